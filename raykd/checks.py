"""Check a parsed search space against the files it names, before Ray starts and before anything is written.

:func:`check_inputs` resolves the task, reads the training and eval splits (so a missing file,
column or unknown label fails now, not in a trial), reads the teacher's configuration and checks
its labels against the task, and checks each student family and method against the teacher (for
example a student initialised from more teacher layers than the teacher has).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from raykd.config import SweepConfig
from raykd.data.sources import load_ood, load_split, task_train_data_forbidden
from raykd.data.tasks import GLUE_TASKS, TaskSpec, normalise_task_name, custom_task, get_task
from raykd.errors import RaykdInputError
from raykd.registry import METHODS, STUDENTS, uses_task_train_data
from raykd.teachers.load import TeacherInfo, check_teacher_labels, inspect_teacher

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CheckedInputs", "check_inputs", "resolve_task"]


@dataclass(frozen=True)
class CheckedInputs:
    """A search space's inputs, read and checked.

    Attributes:
        task: the resolved task.
        teacher: the teacher's configuration.
        frames: ``train`` and each eval split as DataFrames (``text_a``, ``text_b``, ``label``).
    """

    task: TaskSpec
    teacher: TeacherInfo
    frames: dict[str, "pd.DataFrame"]


def resolve_task(space: SweepConfig, teacher: TeacherInfo) -> TaskSpec:
    """The GLUE task named by ``space.task``, or the user's own task described in ``data``.

    Raises:
        RaykdInputError: a GLUE task with custom label settings, or a custom task without
            text columns or labels.
    """
    data = space.data
    if normalise_task_name(space.task) in GLUE_TASKS:
        if data.labels or data.metric:
            raise RaykdInputError(f"data.labels / data.metric only apply to your own tasks; {space.task} is a GLUE task with fixed labels")
        return get_task(space.task)
    if data.source == "glue":
        return get_task(space.task)  # raises with the list of GLUE tasks
    if not data.text_columns:
        raise RaykdInputError(f"data.text_columns: name the text column(s) of task {space.task} (one, or two for pairs)")
    metric = data.metric or "accuracy"
    labels = data.labels
    if labels is None and metric not in ("pearson", "spearman"):
        if not teacher.has_named_labels:
            raise RaykdInputError(f"data.labels: give the label values of task {space.task} in the teacher's id order")
        labels = teacher.label_names
    return custom_task(space.task, data.text_columns, labels, metric)


def _check_data_source(space: SweepConfig) -> None:
    data = space.data
    given = [name for name, value in (("glue_dir", data.glue_dir), ("train", data.train), ("hub", data.hub)) if value]
    if len(given) != 1:
        raise RaykdInputError("data: give exactly one source: glue_dir, train + dev files, or hub "
                              f"(got {', '.join(given) or 'none'})")
    if data.train and not data.dev:
        raise RaykdInputError("data.dev: give a dev file next to data.train (it is used for evaluation)")


def check_inputs(space: SweepConfig) -> CheckedInputs:
    """Read and check everything a space points at; write nothing.

    Raises:
        RaykdInputError: the first problem found, with how to fix it.
    """
    _check_data_source(space)
    teacher = inspect_teacher(space.teacher.path)
    task = resolve_task(space, teacher)
    check_teacher_labels(teacher, task)
    for registry, components in ((STUDENTS, space.students), (METHODS, space.methods)):
        for name, domains in components.items():
            check = getattr(registry.load(name), "check_space", None)
            if check is not None:
                check(domains, teacher.config)
    with_data = [m for m in space.methods if uses_task_train_data(m)]
    for method in with_data:
        if (check := getattr(METHODS.load(method), "check_data", None)) is not None:
            check(space.methods[method], space.data)
    data_free = [m for m in space.methods if m not in with_data]
    _check_data_free(space, data_free, teacher.config, task)
    frames = {}
    if with_data:
        frames["train"] = load_split(space.data, task, "train", space.seed)
        for split in task.eval_splits:
            frames[split] = load_split(space.data, task, split, space.seed)
    else:  # no method may read it, so nothing does: the data layer refuses the training split
        with task_train_data_forbidden(f"every method of this sweep ({', '.join(data_free)}) is data-free"):
            for split in task.eval_splits:
                frames[split] = load_split(space.data, task, split, space.seed)
    if data_free and any(getattr(METHODS.load(m), "NEEDS_OOD", False) for m in data_free) or space.data.ood:
        frames["ood"] = load_ood(space.data, task, space.seed)
    return CheckedInputs(task=task, teacher=teacher, frames=frames)


def _check_data_free(space: SweepConfig, methods: list[str], teacher_config: dict, task: TaskSpec) -> None:
    """Refuse data-free settings that cannot run, before Ray starts.

    Raises:
        RaykdInputError: an out-of-domain corpus missing for a method that needs one, more than one
            worker per trial, a task the method refuses (``check_task``: AS-DFD on regression),
            generated samples longer than ``data.max_length``, or a (method settings, student)
            combination the method refuses (every combination of the listed choices is tried).
    """
    import itertools

    from raykd.domains import domain_values

    for method in methods:
        module = METHODS.load(method)
        if (check_task := getattr(module, "check_task", None)) is not None:
            check_task(task)
        if "gen_length" in space.methods[method]:
            longest = max(int(v) for v in domain_values(space.methods[method]["gen_length"]))
            tokens = longest + (3 if task.is_pair else 2)  # [CLS] a [SEP] (b [SEP])
            if tokens > space.data.max_length:
                raise RaykdInputError(f"methods.{method}.gen_length {longest} plus [CLS]/[SEP] makes {tokens} tokens, "
                                      f"more than data.max_length {space.data.max_length}; lower gen_length or raise "
                                      "max_length")
        if getattr(module, "NEEDS_OOD", False) and not space.data.ood:
            raise RaykdInputError(f"methods.{method} needs an out-of-domain corpus: set data.ood (for example "
                                  "../shared/data/glue/QNLI/dev.tsv) and data.ood_text_column")
        if space.resources.num_workers > 1:
            raise RaykdInputError(f"methods.{method} is data-free and runs on one worker per trial; set "
                                  "resources.num_workers: 1")
        check = getattr(module, "check_student", None)
        if check is None:
            continue
        method_domains = space.methods[method]
        for family, domains in space.students.items():
            # every combination of the settings that decide compatibility; the rest at their first value
            merged = {**method_domains, **domains}
            names = list(merged)
            options = [domain_values(d) if k in _COMPATIBILITY_KEYS else domain_values(d)[:1] for k, d in merged.items()]
            for combo in itertools.product(*options):
                values = dict(zip(names, combo))
                check({k: values[k] for k in method_domains}, family, {k: values[k] for k in domains},
                      teacher_config)


_COMPATIBILITY_KEYS = {"gen_space", "projection", "embedding_dim", "init", "hidden_size"}
