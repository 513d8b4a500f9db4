"""The task table: what each GLUE task reads, how many labels it has, and how it is scored.

A :class:`TaskSpec` is the single description every later stage uses: readers pick text columns
and map label values to ids with it, teachers and students size their heads with
``num_labels``, and the sweep optimises ``primary_metric``. Label order is the Hugging Face
``nyu-mll/glue`` order, so a teacher fine-tuned on the hub version of a task and a student
trained from ``glue_data`` files agree on what class 0 means.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from raykd.errors import RaykdInputError

__all__ = [
    "CLASSIFICATION_METRICS",
    "REGRESSION_METRICS",
    "TaskSpec",
    "GLUE_TASKS",
    "get_task",
    "custom_task",
    "normalise_task_name",
    "label_key",
    "mapped_labels",
    "example_mapping",
]

CLASSIFICATION_METRICS = ("accuracy", "f1", "matthews")
REGRESSION_METRICS = ("pearson", "spearman")

_CUSTOM_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TaskSpec:
    """One text classification or regression task.

    Attributes:
        name: Canonical lower-case name (``sst2``, ``stsb``, ...) or a custom task's name.
        text_fields: Hugging Face column names of the one or two input texts.
        label_names: Label names in id order; ``()`` for regression.
        label_values: Raw label values as written in ``glue_data`` files, in id order
            (SST-2 ``("0", "1")``, RTE ``("entailment", "not_entailment")``); ``()`` for regression.
        metrics: Metric names; the first is the primary metric (the sweep objective).
        glue_dir_name: Sub-folder of a ``glue_data`` folder (``"SST-2"``); None for custom tasks.
        hub: ``(dataset_id, config)`` on the Hugging Face Hub, or None.
        eval_splits: Splits a model is evaluated on; the first is the main one.
        label_aliases: Further raw values that mean a label, as ``(value, id)`` pairs (a
            ``data.labels`` mapping with several values for one label).

    Raises:
        RaykdInputError: If the fields are inconsistent (checked on construction).
    """

    name: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...]
    label_values: tuple[str, ...]
    metrics: tuple[str, ...]
    glue_dir_name: str | None = None
    hub: tuple[str, str] | None = None
    eval_splits: tuple[str, ...] = ("dev",)
    label_aliases: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        _check_spec(self)

    @property
    def is_regression(self) -> bool:
        """True for a task with a real-valued score and no classes (STS-B)."""
        return not self.label_names

    @property
    def num_labels(self) -> int:
        """Size of a model's output layer: the class count, or 1 for regression."""
        return 1 if self.is_regression else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        """True when each example has two texts (``text_a`` and ``text_b``)."""
        return len(self.text_fields) == 2

    @property
    def primary_metric(self) -> str:
        """The metric a sweep optimises: the first of ``metrics``."""
        return self.metrics[0]


def _check_spec(spec: TaskSpec) -> None:
    where = f"task '{spec.name}'"
    if len(spec.text_fields) not in (1, 2) or len(set(spec.text_fields)) != len(spec.text_fields):
        raise RaykdInputError(
            f"{where}: text_fields {list(spec.text_fields)} must be one or two distinct "
            "column names"
        )
    if len(spec.label_values) != len(spec.label_names):
        raise RaykdInputError(
            f"{where}: {len(spec.label_values)} label_values for {len(spec.label_names)} "
            "label_names; give one raw value per label name"
        )
    allowed = REGRESSION_METRICS if spec.is_regression else CLASSIFICATION_METRICS
    kind = "a regression" if spec.is_regression else "a classification"
    bad = [m for m in spec.metrics if m not in allowed]
    if not spec.metrics or bad:
        raise RaykdInputError(
            f"{where}: metrics {list(spec.metrics)} are not valid for {kind} task; "
            f"choose from {', '.join(allowed)}"
        )
    if "f1" in spec.metrics and len(spec.label_names) != 2:
        raise RaykdInputError(
            f"{where}: metric 'f1' (binary F1 of class 1) needs exactly 2 labels, "
            f"got {len(spec.label_names)}; use accuracy or matthews"
        )


def _glue(name, dir_name, fields, names, values, metrics, eval_splits=("dev",)) -> TaskSpec:
    return TaskSpec(
        name=name,
        text_fields=fields,
        label_names=names,
        label_values=values,
        metrics=metrics,
        glue_dir_name=dir_name,
        hub=("nyu-mll/glue", name),
        eval_splits=eval_splits,
    )


_BINARY = ("0", "1")
_NLI2 = ("entailment", "not_entailment")
_NLI3 = ("entailment", "neutral", "contradiction")
_PAIR = ("sentence1", "sentence2")

GLUE_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _glue(
            "cola", "CoLA", ("sentence",), ("unacceptable", "acceptable"), _BINARY, ("matthews",)
        ),
        _glue("sst2", "SST-2", ("sentence",), ("negative", "positive"), _BINARY, ("accuracy",)),
        _glue("mrpc", "MRPC", _PAIR, ("not_equivalent", "equivalent"), _BINARY, ("f1", "accuracy")),
        _glue("stsb", "STS-B", _PAIR, (), (), ("pearson", "spearman")),
        _glue(
            "qqp", "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"), _BINARY,
            ("f1", "accuracy"),
        ),
        _glue(
            "mnli", "MNLI", ("premise", "hypothesis"), _NLI3, _NLI3, ("accuracy",),
            eval_splits=("dev_matched", "dev_mismatched"),
        ),
        _glue("qnli", "QNLI", ("question", "sentence"), _NLI2, _NLI2, ("accuracy",)),
        _glue("rte", "RTE", _PAIR, _NLI2, _NLI2, ("accuracy",)),
        # glue_data writes WNLI labels as 0/1 with 1 = entailment, the hub's id order.
        _glue("wnli", "WNLI", _PAIR, ("not_entailment", "entailment"), _BINARY, ("accuracy",)),
    )
}


def normalise_task_name(name: str) -> str:
    """Canonical key of a task name: lower case without hyphens, underscores or spaces (``SST-2`` -> ``sst2``)."""
    return re.sub(r"[-_\s]", "", name.strip().lower())


def get_task(name: str) -> TaskSpec:
    """Look up a GLUE task by any common spelling.

    Args:
        name: ``"SST-2"``, ``"sst2"``, ``"sst-2"``, ``"STS-B"``, ``"stsb"``, ...
            (case, hyphens, underscores and spaces are ignored).

    Returns:
        The task's :class:`TaskSpec`.

    Raises:
        RaykdInputError: If ``name`` is not a GLUE task; the message lists the valid names.
    """
    spec = GLUE_TASKS.get(normalise_task_name(str(name)))
    if spec is None:
        raise RaykdInputError(
            f"unknown task '{name}'; valid GLUE tasks: {', '.join(GLUE_TASKS)} "
            "(for your own data, declare a custom task with its text fields and labels)"
        )
    return spec


def label_key(value) -> str:
    """The text a label value is matched by, in search spaces and in data files alike.

    Surrounding spaces are dropped and a number with an integer value is written as that integer,
    so ``1`` (YAML or JSON), ``"1"``, ``" 1 "`` and ``1.0`` (a CSV column pandas read as floats)
    are one value. A missing value (None, NaN) is ``""``.
    """
    if value is None or type(value).__name__ == "NAType":
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)) or (isinstance(value, str) and _NUMBER.match(value.strip())):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value).strip()
        if number != number:  # NaN
            return ""
        if number.is_integer():
            return str(int(number))
        return str(value).strip() if isinstance(value, str) else repr(number)
    return str(value).strip()


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def mapped_labels(mapping: dict[str, str], teacher_labels: Sequence[str] | None) -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, int], ...]]:
    """Turn a ``data.labels`` mapping (file value -> teacher label) into label names, values and aliases.

    Args:
        mapping: normalised file value (:func:`label_key`) -> a teacher label name or id.
        teacher_labels: the teacher's label names in id order when it names them; None for a base
            encoder to be fine-tuned, or a teacher whose labels are ``LABEL_0, LABEL_1, ...`` (then a
            target ``LABEL_k`` or ``k`` is id k, and other names take ids in the mapping's order).

    Returns:
        ``(label_names, label_values, label_aliases)`` for :class:`TaskSpec`: names in id order,
        the first file value of each label, and the further values as ``(value, id)`` pairs.

    Raises:
        RaykdInputError: a target that is not one of the teacher's labels, or a teacher label no
            value maps to (the message shows a mapping to write).
    """
    targets = list(dict.fromkeys(mapping.values()))
    if teacher_labels is not None:
        index = {_label_norm(name): i for i, name in enumerate(teacher_labels)}
        index.update({str(i): i for i in range(len(teacher_labels))})
        names = tuple(teacher_labels)
        unknown = [t for t in targets if _label_norm(t) not in index]
        if unknown:
            raise RaykdInputError(f"data.labels maps to {unknown[0]!r}, which is not one of the teacher's labels "
                                  f"({', '.join(teacher_labels)}); write e.g. data.labels: "
                                  f"{example_mapping(list(mapping), teacher_labels)}")
        ids = {t: index[_label_norm(t)] for t in targets}
    else:
        generic = all(re.fullmatch(r"(label_?)?\d+", t, re.IGNORECASE) for t in targets)
        if generic:
            ids = {t: int(re.sub(r"\D", "", t)) for t in targets}
            names = tuple(f"LABEL_{i}" for i in range(max(ids.values()) + 1))
        else:
            ids = {t: i for i, t in enumerate(targets)}
            names = tuple(targets)
    missing = [name for i, name in enumerate(names) if i not in ids.values()]
    if missing:
        raise RaykdInputError(f"data.labels maps no value of your files to the teacher's label {missing[0]!r}; every "
                              f"label ({', '.join(names)}) needs one, e.g. data.labels: "
                              f"{example_mapping(list(mapping), names)}")
    by_id: dict[int, list[str]] = {}
    for value, target in mapping.items():
        by_id.setdefault(ids[target], []).append(value)
    values = tuple(by_id[i][0] for i in range(len(names)))
    aliases = tuple((value, i) for i in range(len(names)) for value in by_id[i][1:])
    return names, values, aliases


def _label_norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def example_mapping(values: Sequence[str], names: Sequence[str]) -> str:
    """A ``data.labels`` mapping to show in a message: ``{v1: name1, ...}``, the values sorted (numbers by
    value) and paired with ``names`` in id order; placeholders when the counts differ. A shape to write,
    not a guess at what the values mean."""
    ordered = sorted(values, key=lambda v: (0, float(v), v) if _NUMBER.match(v) else (1, 0.0, v))
    if len(ordered) != len(names):
        ordered = [f"<value for {name}>" for name in names]
    return "{" + ", ".join(f"{v}: {n}" for v, n in zip(ordered, names)) + "}"


def custom_task(
    name: str,
    text_fields: Sequence[str],
    labels: Sequence[str] | None,
    metric: str = "accuracy",
    *,
    label_values: Sequence[str] | None = None,
    label_aliases: Sequence[tuple[str, int]] = (),
) -> TaskSpec:
    """Describe a user's own task.

    Args:
        name: Task name (letters, digits, ``_``, ``.``, ``-``); must not be a GLUE task's name.
        text_fields: One or two text column names.
        labels: Label names in id order; they are also the raw values expected in data files.
            Empty or None makes a regression task.
        metric: Primary metric: accuracy, f1 (2 labels only) or matthews for classification,
            pearson or spearman for regression. A companion metric is reported too
            (accuracy for f1/matthews, the other correlation for regression).
        label_values: The raw value of each label in data files, when it differs from its name
            (a ``data.labels`` mapping); default: the names.
        label_aliases: Further raw values, as ``(value, id)`` pairs.

    Returns:
        A :class:`TaskSpec` with no ``glue_dir_name`` and no ``hub``.

    Raises:
        RaykdInputError: For a bad name, a GLUE name, duplicate or single labels, or a metric
            that does not fit the task.
    """
    name = str(name).strip()
    if not _CUSTOM_NAME.match(name):
        raise RaykdInputError(
            f"custom task name '{name}' is not valid; use letters, digits, '_', '.' or '-'"
        )
    if normalise_task_name(name) in GLUE_TASKS:
        raise RaykdInputError(
            f"custom task name '{name}' is a GLUE task; use the GLUE task '{normalise_task_name(name)}' "
            "or pick another name"
        )
    if isinstance(text_fields, str):
        text_fields = (text_fields,)
    label_tuple = tuple(str(label).strip() for label in labels or ())
    if len(label_tuple) == 1 or len(set(label_tuple)) != len(label_tuple) or "" in label_tuple:
        raise RaykdInputError(
            f"custom task '{name}': labels {list(label_tuple)} must be at least two distinct "
            "non-empty names (or none at all for a regression task)"
        )
    return TaskSpec(
        name=name,
        text_fields=tuple(str(field) for field in text_fields),
        label_names=label_tuple,
        label_values=tuple(label_values) if label_values is not None else label_tuple,
        metrics=_with_companion(metric, regression=not label_tuple),
        label_aliases=tuple(label_aliases),
    )


def _with_companion(metric: str, *, regression: bool) -> tuple[str, ...]:
    if regression:
        others = [m for m in REGRESSION_METRICS if m != metric]
        return (metric, *others) if metric in REGRESSION_METRICS else (metric,)
    return (metric,) if metric == "accuracy" else (metric, "accuracy")
