"""Read a task split from wherever a search space says the data lives.

One entry point, :func:`load_split`, over the three readers (GLUE folder, user files, hub) plus
seeded subsampling (``train_limit`` / ``dev_limit``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from raykd.data.readers import read_file, read_glue, read_hub
from raykd.data.tasks import TaskSpec
from raykd.errors import RaykdInputError

if TYPE_CHECKING:
    import pandas as pd

    from raykd.config import DataConfig

__all__ = ["load_split", "subsample"]


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
        RaykdInputError: missing files or columns, unknown labels, unreachable hub.
    """
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
    return subsample(frame, limit, seed)


def subsample(frame: "pd.DataFrame", limit: int | None, seed: int) -> "pd.DataFrame":
    """A seeded random sample of ``limit`` rows (all rows, in order, when ``limit`` is None or large)."""
    if limit is None or limit >= len(frame):
        return frame.reset_index(drop=True)
    return frame.sample(n=limit, random_state=seed).reset_index(drop=True)
