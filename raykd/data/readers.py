"""Read task data into one table shape: GLUE ``glue_data`` folders, CSV/TSV/JSONL files, the Hub.

Every reader returns a :class:`pandas.DataFrame` with a fresh ``RangeIndex`` and columns

* ``text_a`` (str) and, for sentence-pair tasks only, ``text_b`` (str);
* ``label``: int64 class ids in the task's id order, or float32 scores for regression. A split
  without labels (GLUE test files, or ``label_column=None``) gets ``-1`` (classification) or
  ``NaN`` (regression).

Texts are kept exactly as written (no stripping), so the same file always gives the same
examples. Label values are matched, as strings with surrounding spaces removed, against
``task.label_values``, ``task.label_names`` and ``task.label_aliases`` (each through
:func:`~raykd.data.tasks.label_key`: ``1``, ``"1"`` and ``1.0`` are one value), so ``0``, ``"0"`` and
``"negative"`` all mean class 0 of SST-2. Error messages count rows from 1 at the first row after the header.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from raykd.data.tasks import TaskSpec, example_mapping, label_key
from raykd.errors import RaykdInputError

__all__ = ["glue_split_path", "read_glue", "read_file", "read_hub"]

_COLUMN_HINT = "set data.text_columns / data.label_column"
_GLUE_HINT = "is it an unmodified glue_data file?"
_COLA_COLUMNS = ["source", "label", "orig_label", "sentence"]


@dataclass(frozen=True)
class _GlueLayout:
    text_columns: tuple[str, ...]
    label_column: str
    lenient: bool = False  # skip short rows, as GLUE's own QQP/MNLI readers do


_GLUE_LAYOUTS = {
    "cola": _GlueLayout(("sentence",), "label"),  # no header: named by position (_COLA_COLUMNS)
    "sst2": _GlueLayout(("sentence",), "label"),
    "mrpc": _GlueLayout(("#1 String", "#2 String"), "Quality"),
    "stsb": _GlueLayout(("sentence1", "sentence2"), "score"),
    "qqp": _GlueLayout(("question1", "question2"), "is_duplicate", lenient=True),
    "mnli": _GlueLayout(("sentence1", "sentence2"), "gold_label", lenient=True),
    "qnli": _GlueLayout(("question", "sentence"), "label"),
    "rte": _GlueLayout(("sentence1", "sentence2"), "label"),
    "wnli": _GlueLayout(("sentence1", "sentence2"), "label"),
}
_MNLI_SPLITS = ("train", "dev_matched", "dev_mismatched", "test_matched", "test_mismatched")
_PLAIN_SPLITS = ("train", "dev", "test")


def _glue_split_name(task: TaskSpec, split: str) -> str:
    split = str(split).strip().lower().replace("validation", "dev")
    if task.name == "mnli":
        split = {"dev": "dev_matched", "test": "test_matched"}.get(split, split)
    valid = _MNLI_SPLITS if task.name == "mnli" else _PLAIN_SPLITS
    if split not in valid:
        raise RaykdInputError(
            f"unknown split '{split}' for task '{task.name}'; valid splits: {', '.join(valid)}"
        )
    return split


def glue_split_path(glue_dir: str | Path, task: TaskSpec, split: str) -> Path:
    """Path of one split's file in a ``glue_data`` folder.

    Args:
        glue_dir: The ``glue_data`` folder (one sub-folder per task, e.g. ``SST-2/train.tsv``).
        task: A GLUE task.
        split: ``train``, ``dev`` or ``test``; for MNLI also ``dev_matched``, ``dev_mismatched``,
            ``test_matched``, ``test_mismatched`` (MNLI ``dev``/``test`` mean the matched ones).
            ``validation`` is accepted as a synonym of ``dev``.

    Returns:
        The existing file, e.g. ``<glue_dir>/MNLI/dev_matched.tsv``.

    Raises:
        RaykdInputError: If the task is not a GLUE task, the split is unknown, or the folder or
            file does not exist.
    """
    if task.glue_dir_name is None or task.name not in _GLUE_LAYOUTS:
        raise RaykdInputError(
            f"task '{task.name}' is not a GLUE task, so it has no glue_data files; "
            "give its files as data.train / data.dev instead of data.glue_dir"
        )
    split = _glue_split_name(task, split)
    root = Path(glue_dir).expanduser()
    if not root.is_dir():
        raise RaykdInputError(
            f"data.glue_dir: folder {root} does not exist; point it at a glue_data folder "
            "(one sub-folder per task, e.g. SST-2/train.tsv)"
        )
    path = root / task.glue_dir_name / f"{split}.tsv"
    if not path.is_file():
        raise RaykdInputError(
            f"data.glue_dir: missing file {path}; put {task.glue_dir_name}'s {split}.tsv there or point "
            f"data.glue_dir at a complete glue_data folder (<glue_dir>/{task.glue_dir_name}/{split}.tsv)"
        )
    return path


def read_glue(glue_dir: str | Path, task: TaskSpec, split: str) -> pd.DataFrame:
    """Read one split of a GLUE task from a ``glue_data`` folder.

    Columns are found by header name (by position for CoLA's header-less train/dev files).
    A file without the label column (GLUE test files) is read as unlabelled. Rows with too few
    fields are skipped for QQP and MNLI only, as GLUE's own readers do; elsewhere they are errors.

    Args:
        glue_dir: The ``glue_data`` folder.
        task: A GLUE task.
        split: See :func:`glue_split_path`.

    Returns:
        The table described in the module docstring.

    Raises:
        RaykdInputError: For a missing folder or file, a file not in glue_data layout, or an
            unknown label value.
    """
    path = glue_split_path(glue_dir, task, split)
    layout = _GLUE_LAYOUTS[task.name]
    if layout.lenient:
        table = _guard(path, "tab-separated text", lambda: _read_lenient_tsv(path))
    elif task.name == "cola" and not _has_header(path):
        table = _read_table(path, ".tsv", header=None, names=_COLA_COLUMNS)
    else:
        table = _read_table(path, ".tsv")
    label_column = layout.label_column if layout.label_column in table.columns else None
    return _to_frame(table, task, layout.text_columns, label_column, str(path), _GLUE_HINT)


def read_file(
    path: str | Path,
    task: TaskSpec,
    text_columns: Sequence[str] | None,
    label_column: str | None,
) -> pd.DataFrame:
    """Read a user's data file.

    Formats by extension: ``.csv`` (standard CSV quoting), ``.tsv`` (tab-separated, no quoting,
    as in glue_data), ``.jsonl`` and ``.json`` (JSON lines; a ``.json`` file holding one JSON
    array of objects also works).

    Args:
        path: The file.
        task: The task the file holds data for.
        text_columns: One column name per task text field (two for a pair task); None uses
            ``task.text_fields``.
        label_column: The label column, or None for unlabelled data.

    Returns:
        The table described in the module docstring.

    Raises:
        RaykdInputError: For a missing or unreadable file, an unsupported extension, the wrong
            number of text columns, a missing column, an empty text, or an unknown label value.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise RaykdInputError(f"data file {path} does not exist; check data.train / data.dev")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        table = _read_table(path, suffix)
    elif suffix in (".jsonl", ".json"):
        table = _guard(path, "JSON lines", lambda: _read_json(path))
    else:
        raise RaykdInputError(
            f"data file {path} has unsupported extension '{path.suffix}'; "
            "use .csv, .tsv, .jsonl or .json (JSON lines)"
        )
    return _to_frame(table, task, text_columns, label_column, str(path), _COLUMN_HINT)


def read_hub(
    dataset_id: str,
    config: str | None,
    split: str,
    task: TaskSpec,
    text_columns: Sequence[str] | None,
    label_column: str,
) -> pd.DataFrame:
    """Read a split of a Hugging Face Hub dataset with ``datasets.load_dataset``.

    ``dev`` is translated to ``validation`` (MNLI: ``validation_matched``), ``dev_matched`` /
    ``dev_mismatched`` and MNLI ``test`` likewise; any other split string, including slices such
    as ``train[:10%]``, is passed through. ``ClassLabel`` ids are turned into their names before
    matching, and a split whose labels are all ``-1`` (hub GLUE test splits) is unlabelled.

    Args:
        dataset_id: Hub dataset id, e.g. ``"nyu-mll/glue"``.
        config: Dataset configuration, e.g. ``"sst2"``, or None.
        split: Split name (see above).
        task: The task the dataset holds data for.
        text_columns: Text column names; None uses ``task.text_fields``.
        label_column: The label column.

    Returns:
        The table described in the module docstring.

    Raises:
        RaykdInputError: If the dataset cannot be loaded (no network, unknown id or split), or
            for the column and label problems :func:`read_file` reports.
    """
    hub_split = _hub_split_name(task, split)
    source = f"hub dataset {dataset_id}" + (f" ({config}, {hub_split})" if config else "")
    try:
        import datasets  # heavy; only hub users pay for it

        dataset = datasets.load_dataset(dataset_id, config, split=hub_split)
    except Exception as exc:  # any failure: offline, unknown id, bad split, missing package
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise RaykdInputError(
            f"could not load {source} from the Hugging Face Hub ({reason}); the hub could not "
            "be reached or has no such dataset: use data.glue_dir or data.train / data.dev "
            "files instead"
        ) from exc
    table, label_column = _hub_table(dataset, label_column)
    return _to_frame(table, task, text_columns, label_column, source, _COLUMN_HINT)


def _hub_split_name(task: TaskSpec, split: str) -> str:
    names = {"dev": "validation", "dev_matched": "validation_matched"}
    names["dev_mismatched"] = "validation_mismatched"
    if task.name == "mnli":
        names.update(dev="validation_matched", test="test_matched")
    return names.get(split, split)


def _hub_table(dataset, label_column: str) -> tuple[pd.DataFrame, str | None]:
    table = dataset.to_pandas()
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)  # a ClassLabel: ids -> names; -1 means no label
    if names is None or label_column not in table.columns:
        return table, label_column
    ids = table[label_column]
    if (ids == -1).all():
        return table, None
    table[label_column] = [names[i] if 0 <= i < len(names) else i for i in ids]
    return table, label_column


def _has_header(path: Path) -> bool:
    with path.open(encoding="utf-8-sig") as handle:
        return handle.readline().split("\t")[0].strip() == "index"


def _guard(path: Path, kind: str, read):
    try:
        return read()
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise RaykdInputError(
            f"could not read {path} as {kind} ({reason}); fix the file or convert it to "
            ".csv, .tsv or .jsonl"
        ) from exc


def _read_table(path: Path, suffix: str, **kwargs) -> pd.DataFrame:
    options = dict(dtype=str, keep_default_na=False, encoding="utf-8-sig", **kwargs)
    if suffix == ".tsv":
        options.update(sep="\t", quoting=csv.QUOTE_NONE)  # '"' is text, not quoting, in GLUE
    kind = "tab-separated text" if suffix == ".tsv" else "CSV"
    return _guard(path, kind, lambda: pd.read_csv(path, **options))


def _read_lenient_tsv(path: Path) -> pd.DataFrame:
    # Python's universal newlines, as GLUE's csv-module readers see the file.
    lines = re.split(r"\r\n|\r|\n", path.read_text(encoding="utf-8-sig"))
    header = lines[0].split("\t")
    width = len(header)
    rows = [fields[:width] for fields in (line.split("\t") for line in lines[1:])
            if len(fields) >= width]
    return pd.DataFrame(rows, columns=header, dtype=str)


def _read_json(path: Path) -> pd.DataFrame:
    with path.open(encoding="utf-8-sig") as handle:
        is_array = handle.read(4096).lstrip().startswith("[")
    return pd.read_json(
        path, lines=not is_array, dtype=False, convert_dates=False, keep_default_dates=False,
        encoding="utf-8-sig",
    )


def _to_frame(table, task, text_columns, label_column, source, hint) -> pd.DataFrame:
    text_columns = _check_text_columns(task, text_columns, source)
    for column in (*text_columns, *([label_column] if label_column is not None else [])):
        if column not in table.columns:
            available = ", ".join(map(str, table.columns))
            raise RaykdInputError(
                f"column '{column}' not found in {source} (columns: {available}); {hint}"
            )
    if len(table) == 0:
        raise RaykdInputError(f"{source} has no data rows; give a file with examples")
    frame = {}
    for name, column in zip(("text_a", "text_b"), text_columns):
        frame[name] = _texts(table[column], column, source)
    if label_column is None:
        frame["label"] = _no_labels(task, len(table))
    elif task.is_regression:
        frame["label"] = _scores(table[label_column], label_column, source)
    else:
        frame["label"] = _label_ids(table[label_column], task, label_column, source)
    return pd.DataFrame(frame)


def _check_text_columns(task: TaskSpec, text_columns, source: str) -> tuple[str, ...]:
    if text_columns is None or len(text_columns) == 0:
        return task.text_fields
    if isinstance(text_columns, str):
        text_columns = (text_columns,)
    if len(text_columns) != len(task.text_fields):
        kind = "a sentence-pair" if task.is_pair else "a single-sentence"
        raise RaykdInputError(
            f"task '{task.name}' is {kind} task and needs {len(task.text_fields)} text "
            f"column(s) in {source}, got {len(text_columns)} ({', '.join(text_columns)}); "
            f"set data.text_columns to {len(task.text_fields)} column name(s)"
        )
    return tuple(text_columns)


def _texts(values: pd.Series, column: str, source: str) -> pd.Series:
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(missing.argmax()) + 1
        raise RaykdInputError(
            f"{source} row {row} has no text in column '{column}'; fill it in or drop the row"
        )
    return values.astype(str).reset_index(drop=True)


def _no_labels(task: TaskSpec, n: int) -> np.ndarray:
    if task.is_regression:
        return np.full(n, np.nan, dtype=np.float32)
    return np.full(n, -1, dtype=np.int64)


def _label_ids(values: pd.Series, task: TaskSpec, column: str, source: str) -> np.ndarray:
    lookup = {label_key(name): i for i, name in enumerate(task.label_names)}
    lookup.update({label_key(value): i for i, value in enumerate(task.label_values)})
    lookup.update({label_key(value): i for value, i in task.label_aliases})
    keys = values.map(label_key)
    ids = keys.map(lookup)
    unknown = ids.isna().to_numpy()
    if unknown.any():
        row = int(unknown.argmax())
        found = [str(v) for v in keys.value_counts().index]
        shown = ", ".join(found[:12]) + (f" and {len(found) - 12} more" if len(found) > 12 else "")
        accepted = ", ".join(dict.fromkeys((*task.label_values, *task.label_names)))
        fix = ("fix the value, set data.label_column, or map your files' values to these labels with "
               f"data.labels: {example_mapping(found, task.label_names)}") if len(found) <= 50 else \
            "is data.label_column the label column?"
        raise RaykdInputError(
            f"unknown label '{keys.iloc[row]}' in {source} row {row + 1} (column '{column}'); "
            f"task '{task.name}' labels are: {accepted}; the column holds {shown}; {fix}"
        )
    return ids.to_numpy(dtype=np.int64)


def _scores(values: pd.Series, column: str, source: str) -> np.ndarray:
    scores = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        row = int(bad.argmax())
        raise RaykdInputError(
            f"score '{values.iloc[row]}' in {source} row {row + 1} (column '{column}') is not a "
            "number; regression labels must be numbers"
        )
    return scores.astype(np.float32)
