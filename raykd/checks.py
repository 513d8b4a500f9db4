"""Check a parsed search space against the files it names, before Ray starts and before anything is written.

:func:`check_inputs` resolves the task, reads the training and eval splits (so a missing file,
column or unknown label fails now, not in a trial), reads the teacher's configuration and checks
its labels against the task, and checks each student family and method against the teacher (for
example a student initialised from more teacher layers than the teacher has).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from raykd.config import SweepConfig
from raykd.data.sources import load_ood, load_split, task_train_data_forbidden
from raykd.data.tasks import GLUE_TASKS, TaskSpec, custom_task, get_task, mapped_labels, normalise_task_name
from raykd.errors import RaykdInputError
from raykd.registry import METHODS, STUDENTS, uses_task_train_data
from raykd.teachers.load import TeacherInfo, check_teacher_labels, inspect_teacher

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CheckedInputs", "check_inputs", "resolve_task", "TaskInputs", "task_space", "check_multi_task_inputs",
           "check_task_inputs", "GLUE_HUB_DATASET"]

GLUE_HUB_DATASET = "nyu-mll/glue"
"""Where a GLUE task's data comes from when a space names no source: the hub's GLUE dataset."""


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

    ``data.labels`` as a list gives the label values in the teacher's id order; as a mapping it
    maps the values in the files to the teacher's label names (or, for a base encoder that
    ``teacher.fine_tune`` turns into the teacher, names the labels its head gets, in the mapping's
    order). A GLUE task takes a mapping only: its labels are fixed, but files may spell them
    differently.

    Raises:
        RaykdInputError: a GLUE task with a label list or a metric, a custom task without text
            columns or labels, or a mapping that does not cover the teacher's labels.
    """
    data = space.data
    named = teacher.label_names if teacher.has_named_labels and not space.teacher.fine_tune else None
    if normalise_task_name(space.task) in GLUE_TASKS:
        if data.metric or isinstance(data.labels, tuple):
            raise RaykdInputError(f"data.labels as a list / data.metric only apply to your own tasks; {space.task} is "
                                  "a GLUE task with fixed labels (a mapping such as data.labels: {neg: negative, "
                                  "pos: positive} may say how your files spell them)")
        task = get_task(space.task)
        if isinstance(data.labels, dict):
            names, values, aliases = mapped_labels(data.labels, task.label_names)
            task = replace(task, label_aliases=tuple((v, i) for i, v in enumerate(values)) + aliases)
        return task
    if data.source == "glue":
        return get_task(space.task)  # raises with the list of GLUE tasks
    if not data.text_columns:
        raise RaykdInputError(f"data.text_columns: name the text column(s) of task {space.task} (one, or two for pairs)")
    metric = data.metric or "accuracy"
    if data.labels is not None and metric in ("pearson", "spearman"):
        raise RaykdInputError(f"data.labels: a regression task ({metric}) has scores, not labels; drop data.labels "
                              "or choose a classification metric (accuracy, f1, matthews)")
    if isinstance(data.labels, dict):
        names, values, aliases = mapped_labels(data.labels, named)
        return custom_task(space.task, data.text_columns, names, metric, label_values=values, label_aliases=aliases)
    labels = data.labels
    if labels is None and metric not in ("pearson", "spearman"):
        if named is None:
            what = ("the fine-tuned teacher's head gets one output per label" if space.teacher.fine_tune else
                    f"its teacher names its labels {', '.join(teacher.label_names)}")
            raise RaykdInputError(f"data.labels: give the label values of task {space.task} ({what}), as a list in "
                                  "the teacher's id order or a mapping such as data.labels: {0: negative, 1: positive}")
        labels = named
    return custom_task(space.task, data.text_columns, labels, metric)


def _with_default_source(space: SweepConfig) -> SweepConfig:
    """A GLUE task with no data source reads the hub's GLUE dataset (config = the task's name)."""
    from dataclasses import replace

    data = space.data
    if data.glue_dir or data.train or normalise_task_name(space.task) not in GLUE_TASKS:
        return space
    if data.hub is None:
        data = replace(data, hub=GLUE_HUB_DATASET)
    if data.hub == GLUE_HUB_DATASET and data.hub_config is None:
        data = replace(data, hub_config=normalise_task_name(space.task))
    return replace(space, data=data)


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
    if space.multi_task:
        raise RaykdInputError(f"{space.name} is a multi-task space (tasks: {', '.join(space.tasks)}); "
                              "check it with check_multi_task_inputs")
    if "multitask" in space.methods:
        raise RaykdInputError("methods.multitask distils several tasks at once: list them with tasks: [sst2, cola, ...] "
                              "instead of task, or drop multitask")
    space = _with_default_source(space)
    _check_data_source(space)
    space = replace(space, teacher=space.teacher.for_task(space.task))
    teacher = inspect_teacher(space.teacher.path, "teacher.base" if space.teacher.fine_tune else "teacher.path")
    _check_max_length(space, teacher)
    task = resolve_task(space, teacher)
    if not space.teacher.fine_tune:  # a base encoder to fine-tune gets its head from the task
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
    if data_free and any(_needs_ood(m, space.methods[m]) for m in data_free) or space.data.ood:
        frames["ood"] = load_ood(space.data, task, space.seed)
    return CheckedInputs(task=task, teacher=teacher, frames=frames)


def _check_max_length(space: SweepConfig, teacher: TeacherInfo) -> None:
    """``data.max_length`` must fit the teacher's position embeddings (else its forward pass fails on long texts)."""
    positions = teacher.config.get("max_position_embeddings")
    if isinstance(positions, int) and space.data.max_length > positions:
        raise RaykdInputError(f"data.max_length {space.data.max_length} is more than the {positions} positions the "
                              f"teacher {teacher.path} can read; set data.max_length <= {positions}")


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
        if _needs_ood(method, space.methods[method]) and not space.data.ood:
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


def _needs_ood(method: str, domains: dict) -> bool:
    """Whether a data-free method's settings read an out-of-domain corpus (``needs_ood(domains)``, else ``NEEDS_OOD``)."""
    module = METHODS.load(method)
    if (needs := getattr(module, "needs_ood", None)) is not None:
        return bool(needs(domains))
    return bool(getattr(module, "NEEDS_OOD", False))


@dataclass(frozen=True)
class TaskInputs:
    """One task of a multi-task space, checked.

    Attributes:
        space: the space narrowed to this task (``task`` set, ``teacher.path`` its ready teacher, or
            the base encoder when ``teacher.fine_tune`` is true).
        inputs: its checked data and teacher (the base encoder's configuration before fine-tuning).
    """

    space: SweepConfig
    inputs: CheckedInputs

    @property
    def fine_tune(self) -> bool:
        """The teacher is still to be fine-tuned from ``inputs.teacher.path``."""
        return self.space.teacher.fine_tune


def task_space(space: SweepConfig, task: str) -> SweepConfig:
    """A multi-task space narrowed to one of its tasks (its teacher, its data source).

    Raises:
        RaykdInputError: the task has no teacher.
    """
    one = replace(space, task=task, tasks=(), teacher=space.teacher.for_task(task),
                  methods={m: d for m, d in space.methods.items() if m != "multitask"} or {"vanilla": {}})
    return _with_default_source(one)


def _missing_local_data(space: SweepConfig, task: TaskSpec) -> str | None:
    """Why a GLUE task has no local files in ``glue_dir`` (None when it has them or data is not local)."""
    from raykd.data.readers import glue_split_path

    if space.data.source != "glue" or normalise_task_name(space.task) not in GLUE_TASKS:
        return None
    for split in ("train", *task.eval_splits):
        try:
            glue_split_path(space.data.glue_dir, task, split)
        except RaykdInputError as err:
            return str(err).split(";")[0]
    return None


def check_multi_task_inputs(space: SweepConfig, echo: Callable[[str], Any] = print) -> dict[str, TaskInputs]:
    """Check every task of a multi-task space; GLUE tasks without local files are skipped with a notice.

    Returns:
        task name -> its checked inputs, in the space's order (skipped tasks left out).

    Raises:
        RaykdInputError: a problem with a task that has data, no task with data, or (with the
            ``multitask`` method) teachers with different vocabularies.
    """
    checked: dict[str, TaskInputs] = {}
    for name in space.tasks:
        one = task_space(space, name)
        task = get_task(name) if normalise_task_name(name) in GLUE_TASKS else None
        if task is not None and (why := _missing_local_data(one, task)):
            echo(f"skipping task {name}: {why}")
            continue
        try:
            checked[task.name if task else name] = TaskInputs(space=one, inputs=check_inputs(one))
        except RaykdInputError as err:
            raise RaykdInputError(f"task {name}: {err}") from None
    if not checked:
        raise RaykdInputError(f"none of the tasks {', '.join(space.tasks)} has data in {space.data.glue_dir}; "
                              "point data.glue_dir at a glue_data folder")
    if "multitask" in space.methods:
        vocab = {name: (t.inputs.teacher.config.get("vocab_size"), t.inputs.teacher.config.get("pad_token_id", 0))
                 for name, t in checked.items()}
        if len(set(vocab.values())) > 1:
            listed = ", ".join(f"{n}: {v[0]}" for n, v in vocab.items())
            raise RaykdInputError(f"methods.multitask shares one student encoder across tasks, so every task's "
                                  f"teacher needs the same vocabulary; vocab sizes differ ({listed})")
        if space.resources.num_workers > 1:
            raise RaykdInputError("methods.multitask runs on one worker per trial; set resources.num_workers: 1")
    return checked


def check_task_inputs(space: SweepConfig, echo: Callable[[str], Any] = print) -> dict[str, TaskInputs]:
    """Check every task of a space: a multi-task space's tasks, or a single-task space as its one task.

    Returns:
        task name -> :class:`TaskInputs` (for a single-task space, the space narrowed to its
        teacher: ``teacher.path`` the ready teacher, or the base encoder with ``fine_tune``).

    Raises:
        RaykdInputError: see :func:`check_inputs` and :func:`check_multi_task_inputs`.
    """
    if space.multi_task:
        return check_multi_task_inputs(space, echo)
    inputs = check_inputs(space)
    one = _with_default_source(replace(space, teacher=space.teacher.for_task(space.task)))
    return {inputs.task.name: TaskInputs(space=one, inputs=inputs)}
