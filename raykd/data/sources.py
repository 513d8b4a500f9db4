"""Read a task split from wherever a search space says the data lives.

One entry point, :func:`load_split`, over the three readers (GLUE folder, user files, hub) plus
seeded subsampling (``train_limit`` / ``dev_limit``).
"""

from __future__ import annotations

import contextlib
import contextvars
from pathlib import Path
from typing import TYPE_CHECKING

from raykd.data.readers import read_file, read_glue, read_hub
from raykd.data.tasks import TaskSpec
from raykd.errors import RaykdInputError

if TYPE_CHECKING:
    import pandas as pd

    from raykd.config import DataConfig

__all__ = ["load_split", "load_ood", "subsample", "low_data_sample", "task_train_data_forbidden", "task_train_file"]

_FORBIDDEN: contextvars.ContextVar[str | None] = contextvars.ContextVar("raykd_task_train_forbidden", default=None)


@contextlib.contextmanager
def task_train_data_forbidden(reason: str):
    """Within this block :func:`load_split` refuses the task's training split (data-free sweeps).

    Args:
        reason: why, for the error message (e.g. "every method of this sweep is data-free").
    """
    token = _FORBIDDEN.set(reason)
    try:
        yield
    finally:
        _FORBIDDEN.reset(token)


def task_train_file(data: "DataConfig", task: TaskSpec) -> Path | None:
    """The file holding the task's training split, when it is a local file (else None)."""
    if data.source == "glue":
        from raykd.data.readers import glue_split_path

        try:
            return Path(glue_split_path(data.glue_dir, task, "train")).resolve()
        except RaykdInputError:
            return None
    return Path(data.train).expanduser().resolve() if data.train else None


def load_ood(data: "DataConfig", task: TaskSpec, seed: int = 0) -> "pd.DataFrame":
    """Read the out-of-domain corpus ``data.ood`` as an unlabelled transfer set.

    Sentences are de-duplicated and sampled (``ood_limit``, seeded). For a pair task each sentence
    is paired with another random sentence of the corpus (``text_b``).

    Returns:
        DataFrame with ``text_a`` (and ``text_b`` for pairs) and an empty ``label``.

    Raises:
        RaykdInputError: ``data.ood`` unset, missing, without the text column, or the task's own
            training file.
    """
    import numpy as np

    from raykd.data.tasks import custom_task

    if not data.ood:
        raise RaykdInputError("data.ood is not set; data-free methods need an out-of-domain text file "
                              "(e.g. ../shared/data/glue/QNLI/dev.tsv with ood_text_column: sentence)")
    path = Path(data.ood).expanduser().resolve()
    train = task_train_file(data, task)
    if train is not None and path == train:
        raise RaykdInputError(f"data.ood is the task's own training file ({path}); data-free methods must not "
                              "read it: give another corpus, e.g. ../shared/data/glue/QNLI/dev.tsv")
    single = custom_task("ood", (data.ood_text_column,), (), "pearson")
    frame = read_file(path, single, [data.ood_text_column], None)
    frame = frame.drop_duplicates("text_a").reset_index(drop=True)
    frame = subsample(frame, data.ood_limit, seed)[["text_a"]]
    if task.is_pair:
        partner = np.random.default_rng(seed + 1).permutation(len(frame))
        frame["text_b"] = frame["text_a"].to_numpy()[partner]
    frame["label"] = float("nan") if task.is_regression else -1
    return frame


def load_split(data: "DataConfig", task: TaskSpec, split: str, seed: int = 0) -> "pd.DataFrame":
    """Read ``split`` (``train`` or an eval split such as ``dev``) of ``task``.

    Args:
        data: the space's data section.
        task: the task the data belongs to.
        split: ``train`` or one of ``task.eval_splits``.
        seed: seed of the ``train_limit`` / ``dev_limit`` sample.

    Returns:
        DataFrame with ``text_a``, optional ``text_b`` and ``label`` columns.

    Raises:
        RaykdInputError: missing files or columns, unknown labels, unreachable hub; the training
            split inside :func:`task_train_data_forbidden`.
    """
    if split == "train" and (reason := _FORBIDDEN.get()):
        raise RaykdInputError(f"the task's training split may not be read: {reason}; data-free methods "
                              "(zero_shot, as_dfd, random_tokens) learn from data.ood and generated samples only")
    if data.source == "glue":
        frame = read_glue(data.glue_dir, task, split)
    elif data.source == "files":
        path = data.train if split == "train" else data.dev
        if path is None:
            raise RaykdInputError(f"data.{'train' if split == 'train' else 'dev'} is not set; give the file path")
        frame = read_file(path, task, data.text_columns or task.text_fields, data.label_column or "label")
    else:
        # GLUE's dev splits are "validation*" on the hub (MNLI: validation_matched / _mismatched)
        hub_split = (data.hub_train_split if split == "train" else data.hub_dev_split if split == "dev"
                     else split.replace("dev", "validation"))
        frame = read_hub(data.hub, data.hub_config, hub_split, task,
                         data.text_columns or task.text_fields, data.label_column or "label")
    limit = data.train_limit if split == "train" else data.dev_limit
    frame = subsample(frame, limit, seed)
    if split == "train" and data.train_size is not None:
        frame = low_data_sample(frame, task, data.train_size, seed)
    return frame


def low_data_sample(frame: "pd.DataFrame", task: TaskSpec, train_size: int | float, seed: int) -> "pd.DataFrame":
    """The low-data training set: ``train_size`` examples per class (int) or a fraction (float).

    A fraction is stratified by class for classification tasks (scikit-learn's
    ``train_test_split``), so label proportions match the full set; regression takes a plain
    seeded sample. Rows keep their original order.

    Raises:
        RaykdInputError: examples per class on a regression task, more per class than a class
            has, or a fraction too small to keep one example of every class.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(train_size, int):
        if task.is_regression:
            raise RaykdInputError(f"data.train_size {train_size} means examples per class, but {task.name} is "
                                  "a regression task; give a fraction such as 0.01")
        counts = frame["label"].value_counts()
        if train_size > counts.min():
            raise RaykdInputError(f"data.train_size {train_size} per class, but label {counts.idxmin()!r} has only "
                                  f"{counts.min()} training examples; lower train_size")
        index = frame.groupby("label").sample(n=train_size, random_state=seed).index
        return frame.loc[sorted(index)].reset_index(drop=True)
    stratify = None if task.is_regression else frame["label"]
    try:
        kept, _ = train_test_split(frame, train_size=train_size, random_state=seed, stratify=stratify)
    except ValueError as err:
        raise RaykdInputError(f"data.train_size {train_size} of {len(frame)} examples: {err}; raise it") from None
    return kept.sort_index().reset_index(drop=True)


def subsample(frame: "pd.DataFrame", limit: int | None, seed: int) -> "pd.DataFrame":
    """A seeded random sample of ``limit`` rows (all rows, in order, when ``limit`` is None or large)."""
    if limit is None or limit >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=limit, random_state=seed).reset_index(drop=True)
