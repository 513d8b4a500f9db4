"""Search-space files: YAML -> a frozen :class:`SweepConfig`, every key and value checked.

A search space is a YAML mapping with these sections (see ``search_spaces/sst2_demo.yaml``)::

    name: sst2-demo                # sweep name (default: the file name)
    task: sst2                     # a GLUE task, or your own task name with data.labels
    data: {glue_dir: ../shared/data/glue, max_length: 64}
    teacher: {path: ../shared/models/minilm-sst2}
    methods: {vanilla: {kd_loss: [kl, mse], temperature: {low: 1, high: 8, log: true}}}
    students: {bilstm: {hidden_dim: [64, 128]}, transformer: {num_layers: [1, 2], lr: 1.0e-4}}
    training: {lr: {low: 1.0e-4, high: 3.0e-3, log: true}, epochs: 2, batch_size: 64}
    budget: {num_samples: 8, max_concurrent: 2}
    resources: {num_workers: 1, cpus_per_worker: 1}
    seed: 0

Parsing (:func:`load_space`) reads only the YAML and the registries; it rejects unknown keys,
unknown methods or students, empty choice lists and impossible values. :func:`check_inputs`
(in :mod:`raykd.checks`) then checks the files the space points at. Both run before Ray starts.
Relative paths are resolved against the current working directory.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from raykd.domains import Domain, ParamSpec, parse_domain, parse_params, reject_unknown
from raykd.errors import RaykdInputError
from raykd.registry import METHODS, STUDENTS
from raykd.yamlfile import read_yaml

__all__ = [
    "DataConfig",
    "TeacherConfig",
    "BudgetConfig",
    "ResourcesConfig",
    "StageResources",
    "StagesConfig",
    "SweepConfig",
    "TRAINING_PARAMS",
    "load_space",
    "parse_space",
    "read_yaml",
]

TRAINING_PARAMS: dict[str, ParamSpec] = {
    "lr": ParamSpec(float, 1e-3, "peak learning rate of AdamW", low=0, low_open=True),
    "epochs": ParamSpec(int, 1, "passes over the transfer set", low=1),
    "batch_size": ParamSpec(int, 64, "examples per optimiser step, per worker", low=1),
    "weight_decay": ParamSpec(float, 0.01, "AdamW weight decay", low=0),
    "warmup_ratio": ParamSpec(float, 0.06, "share of steps with linear warm-up", low=0, high=1),
    "grad_clip": ParamSpec(float, 1.0, "gradient-norm clip (0 = off)", low=0),
    "steps_per_epoch": ParamSpec(int, 200, "student steps per epoch of data-free methods (they have no "
                                 "training set to pass over)", low=1),
}


@dataclass(frozen=True)
class DataConfig:
    """Where the task data comes from: exactly one of ``glue_dir``, ``train``+``dev`` files, ``hub``.

    Attributes:
        glue_dir: a folder in GLUE's ``glue_data`` layout (``<glue_dir>/SST-2/train.tsv``).
        train, dev: CSV / TSV / JSONL files of your own task.
        hub: a Hugging Face dataset id (needs a network), with ``hub_config`` and split names.
        text_columns: the text column(s) of files or hub data (one, or two for sentence pairs).
        label_column: the label column of files or hub data.
        labels: the task's labels, either a list of label values in the teacher's id order
            (``[negative, positive]``: each value is also the label's name), or a mapping from the
            values written in the data files to the teacher's label names (``{0: negative, 1:
            positive}``; several values may map to one name; a teacher whose config names its labels
            ``LABEL_0, LABEL_1, ...`` also takes those names or the ids ``0, 1, ...``). Values are
            matched as text, so ``1``, ``"1"`` and ``1.0`` are the same value. Omit it for
            regression, or when the files already use the teacher's label names.
        metric: metric of your own task: accuracy, f1, matthews, pearson, spearman.
        max_length: tokens per example after tokenisation (longer examples are truncated).
        train_limit: use a seeded random sample of this many training examples (smoke runs).
        train_size: the low-data setting (Generation-Distillation): an integer is labelled examples
            per class, a number in (0, 1) a fraction of the training set (stratified by class);
            sampled with ``seed`` after ``train_limit``, logged with the sweep. Every method that
            reads task data (teacher soft targets, augmentation, generator) sees only this sample.
        dev_limit: use a seeded random sample of this many dev examples.
        ood: an out-of-domain text file (TSV / CSV / JSONL) that data-free methods label with the
            teacher instead of the task's training text (e.g. ``glue/QNLI/dev.tsv``: Wikipedia
            sentences, for SST-2). Never the task's own training file.
        ood_text_column: its text column.
        ood_limit: use a seeded random sample of this many OOD sentences.
    """

    glue_dir: str | None = None
    train: str | None = None
    dev: str | None = None
    hub: str | None = None
    hub_config: str | None = None
    hub_train_split: str = "train"
    hub_dev_split: str = "validation"
    text_columns: tuple[str, ...] | None = None
    label_column: str | None = None
    labels: tuple[str, ...] | dict[str, str] | None = None
    metric: str | None = None
    max_length: int = 128
    train_limit: int | None = None
    train_size: int | float | None = None
    dev_limit: int | None = None
    ood: str | None = None
    ood_text_column: str = "sentence"
    ood_limit: int | None = None

    @property
    def source(self) -> str:
        """``glue``, ``files`` or ``hub``."""
        return "glue" if self.glue_dir else "files" if self.train else "hub"


@dataclass(frozen=True)
class TeacherConfig:
    """The fine-tuned teacher(s): ready Hugging Face sequence-classification folders or hub ids, or an
    encoder that raykd fine-tunes per task before the trials (cached; see :mod:`raykd.teachers.stage`).

    A single-task space gives ``path``, or ``base`` with ``fine_tune: true``. A multi-task space
    (``tasks: [...]``) gives a ready teacher per task in ``paths`` and/or ``base`` with
    ``fine_tune: true`` for the tasks without one.

    Attributes:
        path: model folder (``save_pretrained`` layout) or hub id of a ready teacher.
        paths: task -> ready teacher, for multi-task spaces.
        base: a pretrained encoder (folder or hub id) to fine-tune into a teacher per task.
        fine_tune: fine-tune ``base`` on each task that has no ready teacher.
        fine_tune_epochs, fine_tune_lr, fine_tune_batch_size: fine-tuning settings (the
            tokens per example are ``data.max_length``).
        batch_size: examples per forward pass when computing soft targets.
        allow_weak: go on with a teacher whose dev metric does not beat the majority-class
            baseline (by default such a teacher is refused before anything is written).
    """

    path: str | None = None
    paths: dict[str, str] = field(default_factory=dict)
    base: str | None = None
    fine_tune: bool = False
    fine_tune_epochs: int = 3
    fine_tune_lr: float = 5e-5
    fine_tune_batch_size: int = 32
    batch_size: int = 128
    allow_weak: bool = False

    def for_task(self, task: str) -> "TeacherConfig":
        """This section narrowed to one task: ``path`` is its ready teacher, or ``base`` when it is fine-tuned.

        Raises:
            RaykdInputError: the task has neither a ready teacher nor ``base`` with ``fine_tune: true``.
        """
        from dataclasses import replace

        from raykd.data.tasks import normalise_task_name

        ready = {normalise_task_name(k): v for k, v in self.paths.items()}.get(normalise_task_name(task))
        if ready:
            return replace(self, path=ready, paths={}, fine_tune=False)
        if self.fine_tune:
            if not self.base:
                raise RaykdInputError("teacher.fine_tune needs teacher.base: the pretrained encoder to fine-tune "
                                      "(e.g. ../shared/models/all-MiniLM-L6-v2 or bert-base-uncased)")
            return replace(self, path=self.base, paths={})
        if self.path and not self.paths:
            return self
        raise RaykdInputError(f"teacher: task {task} has no teacher; give teacher.paths.{task} (a fine-tuned model) "
                              "or teacher.base with fine_tune: true")


@dataclass(frozen=True)
class BudgetConfig:
    """How many trials, and how many at once.

    Attributes:
        num_samples: trials Optuna proposes in total.
        max_concurrent: trials running at once (default: cluster CPUs / CPUs per trial).
        time_budget_s: stop proposing new trials after this many seconds.
    """

    num_samples: int = 8
    max_concurrent: int | None = None
    time_budget_s: float | None = None


@dataclass(frozen=True)
class ResourcesConfig:
    """Ray Train resources of each trial.

    Attributes:
        num_workers: data-parallel workers per trial (DDP when > 1).
        cpus_per_worker: CPUs reserved per worker; also its torch thread count.
        gpus_per_worker: GPUs per worker (fractions allowed); > 0 means ``use_gpu``.
        worker_resources: custom Ray resources per worker (``{raykd_gpu: 1}``), to place
            workers on the node types that advertise them.
        max_failures: retries of a trial's workers after a worker is lost or fails; a one-worker trial
            whose loss diverged fails at once (a retry would diverge again).
    """

    num_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    worker_resources: dict[str, float] = field(default_factory=dict)
    max_failures: int = 1

    @property
    def use_gpu(self) -> bool:
        """Whether workers run on GPUs."""
        return self.gpus_per_worker > 0


@dataclass(frozen=True)
class StageResources:
    """What one unit of a heavy stage asks Ray for (one teacher fine-tuning task, one soft-target
    replica, one transfer-set build).

    Unset values (null) are filled from the cluster the sweep sees (:func:`raykd.stages.resolve_stages`):
    one GPU per unit when the cluster has GPUs, else none; the CPUs shared out; no memory reservation.

    Attributes:
        gpus: GPUs per unit (fractions allowed); the unit's code runs on CUDA with bf16 autocast when
            torch sees a GPU there, and on CPU otherwise (a node may advertise a GPU torch cannot use).
        cpus: CPUs per unit; also its torch thread count.
        memory_gb: memory Ray reserves per unit (GiB; 0: none), so big teachers do not land together
            on one small node.
        replicas: soft targets only: teacher replicas (Ray Data actors) labelling in parallel
            (default: one per GPU, or one per node's worth of CPUs without GPUs).
        batch_size: soft targets only: examples per teacher forward pass (default ``teacher.batch_size``).
        resources: custom Ray resources per unit (``{raykd_gpu: 1}``) to place it on a node type.
    """

    gpus: float | None = None
    cpus: float | None = None
    memory_gb: float | None = None
    replicas: int | None = None
    batch_size: int | None = None
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class StagesConfig:
    """Resources of the heavy stages before and beside the trials (``stages:`` in a space)::

        stages:
          teacher: {gpus: 1, cpus: 8, memory_gb: 24}          # per teacher fine-tuning task
          soft_targets: {replicas: 8, gpus: 1, cpus: 4, batch_size: 512}
          transfer_sets: {gpus: 1, cpus: 8, memory_gb: 32}    # per build (Tang, generation)

    Attributes:
        teacher: each teacher fine-tuning Ray task.
        soft_targets: each teacher replica of the soft-target batch inference (Ray Data).
        transfer_sets: each transfer-set build (a Ray task the trials that need the set wait for).
    """

    teacher: StageResources = field(default_factory=StageResources)
    soft_targets: StageResources = field(default_factory=StageResources)
    transfer_sets: StageResources = field(default_factory=StageResources)


@dataclass(frozen=True)
class SweepConfig:
    """A parsed, checked search space.

    Attributes:
        name: sweep name, used for the MLflow experiment and the output folder.
        task: task name as written (GLUE name, or your own); in a multi-task space the task names
            joined by ``+``.
        tasks: the tasks of a multi-task space (``tasks: [sst2, cola, ...]``), empty otherwise.
        data, teacher, budget, resources, stages: the sections above.
        methods: method name -> setting name -> domain.
        students: student family -> setting name -> domain.
        training: training setting -> domain (:data:`TRAINING_PARAMS`).
        student_training: student family -> training settings that override ``training`` for
            trials of that family (``students: {transformer: {lr: ..., epochs: 1}}``), because a
            teacher-initialised transformer and a BiLSTM rarely share a good learning rate.
        seed: seed of Optuna's sampler, data sampling and every trial.
        source: the YAML text as read, kept for provenance.
    """

    name: str
    task: str
    data: DataConfig
    teacher: TeacherConfig
    methods: dict[str, dict[str, Domain]]
    students: dict[str, dict[str, Domain]]
    training: dict[str, Domain]
    student_training: dict[str, dict[str, Domain]] = field(default_factory=dict)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    stages: StagesConfig = field(default_factory=StagesConfig)
    seed: int = 0
    source: str = ""
    tasks: tuple[str, ...] = ()

    @property
    def multi_task(self) -> bool:
        """A space over several tasks (``tasks: [...]``)."""
        return bool(self.tasks)


_TOP_KEYS = ("name", "task", "tasks", "data", "teacher", "methods", "students", "training", "budget", "resources",
             "stages", "seed")


def load_space(path: str | Path, overrides: Mapping[str, Any] | None = None) -> SweepConfig:
    """Read and parse a search-space file.

    Args:
        path: the YAML file, or the name of a bundled space (``sst2_demo``; see :mod:`raykd.spaces`).
        overrides: dotted key -> value, applied before parsing (``{"budget.num_samples": 2}``).

    Raises:
        RaykdInputError: anything wrong with the file's text or values.
    """
    from raykd.spaces import resolve_space

    path = resolve_space(path)
    raw, text = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        if not all(dotted.split(".")):
            raise RaykdInputError(f"--set {dotted}={value}: the key needs dotted names, e.g. budget.num_samples")
        _set_dotted(raw, dotted, value)
    if overrides:  # keep the space exactly as it runs, so a resumed sweep runs the same one
        applied = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        text = f"# {path} with --set {applied}\n" + yaml.safe_dump(raw, sort_keys=False)
    return parse_space(raw, default_name=Path(path).stem, source=text)


def _set_dotted(raw: dict, dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise RaykdInputError(f"override {dotted}: '{key}' is not a section")
    node[leaf] = value


def parse_space(raw: Mapping, default_name: str = "sweep", source: str = "") -> SweepConfig:
    """Parse a search-space mapping (already loaded from YAML).

    Raises:
        RaykdInputError: unknown keys, unknown methods or students, bad values.
    """
    reject_unknown(raw, _TOP_KEYS, "")
    tasks = _tasks(raw)
    for key in ("task", "data", "teacher", "methods", "students"):
        if key == "task" and tasks:
            continue
        if key not in raw:
            raise RaykdInputError(f"search space has no '{key}' section; see search_spaces/sst2_demo.yaml")
    teacher = _require_teacher(_parse_section(TeacherConfig, raw["teacher"], "teacher"), tasks)
    students, student_training = _split_student_training(raw["students"])
    name = raw.get("name") or default_name
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise RaykdInputError(f"name must be one word of letters, digits, '-', '_' or '.', got {name!r}")
    return SweepConfig(
        name=name,
        task="+".join(tasks) if tasks else str(raw["task"]),
        tasks=tasks,
        data=_parse_section(DataConfig, raw["data"], "data"),
        teacher=teacher,
        methods=_parse_components(raw["methods"], METHODS, "methods"),
        students=_parse_components(students, STUDENTS, "students"),
        training=parse_params(raw.get("training"), TRAINING_PARAMS, "training"),
        student_training=student_training,
        budget=_parse_section(BudgetConfig, raw.get("budget") or {}, "budget"),
        resources=_parse_section(ResourcesConfig, raw.get("resources") or {}, "resources"),
        stages=_stages(raw.get("stages") or {}),
        seed=_seed(raw.get("seed", 0)),
        source=source or _as_yaml(raw),
    )


def _stages(raw: Any) -> StagesConfig:
    """The ``stages:`` section: a :class:`StageResources` per stage; ``replicas``/``batch_size`` only for soft targets."""
    if not isinstance(raw, Mapping):
        raise RaykdInputError(f"stages must be a mapping of stage -> resources, e.g. {{teacher: {{gpus: 1}}}}, got {_show(raw)}")
    reject_unknown(raw, StagesConfig.__dataclass_fields__, "stages")
    parsed = {}
    for name, section in raw.items():
        resources = _parse_section(StageResources, section if section is not None else {}, f"stages.{name}")
        if name != "soft_targets":
            for key in ("replicas", "batch_size"):
                if getattr(resources, key) is not None:
                    raise RaykdInputError(f"stages.{name}.{key}: only stages.soft_targets has {key}; "
                                          f"stages.{name} takes gpus, cpus, memory_gb and resources")
        parsed[name] = resources
    return StagesConfig(**parsed)


def _as_yaml(raw: Mapping) -> str:
    """A space built in Python has no file: its YAML, so the sweep folder's space.yaml can resume it."""
    try:
        return yaml.safe_dump(dict(raw), sort_keys=False)
    except yaml.YAMLError:  # values YAML cannot write (a Path): such a sweep cannot be resumed from its folder
        return ""


def _require_teacher(teacher: TeacherConfig, tasks: tuple[str, ...]) -> TeacherConfig:
    """A teacher section names a ready teacher (``path``; ``paths`` per task) or a base to fine-tune."""
    if teacher.path or teacher.paths or (teacher.base and teacher.fine_tune):
        return teacher
    if teacher.base:
        raise RaykdInputError("teacher.base is given without fine_tune: true; add fine_tune: true to fine-tune it per "
                              "task, or give path (a fine-tuned teacher)")
    per_task = " (or paths: {task: folder})" if tasks else ""
    raise RaykdInputError(f"teacher: missing required key(s) path{per_task}; give a fine-tuned teacher folder or hub id, "
                          "or base (a pretrained encoder) with fine_tune: true")


def _tasks(raw: Mapping) -> tuple[str, ...]:
    """The ``tasks`` list of a multi-task space (empty for a single-task one)."""
    if "tasks" not in raw:
        return ()
    if "task" in raw:
        raise RaykdInputError("give either task (one task) or tasks (a list, for a multi-task sweep), not both")
    tasks = raw["tasks"]
    if isinstance(tasks, str):
        tasks = [tasks]
    if not isinstance(tasks, list) or not tasks or not all(isinstance(t, str) and t for t in tasks):
        raise RaykdInputError(f"tasks must be a non-empty list of task names, e.g. [sst2, cola, mrpc], got {tasks!r}")
    if len(set(tasks)) != len(tasks):
        raise RaykdInputError(f"tasks lists a task twice: {tasks}")
    return tuple(tasks)


def _split_student_training(raw: Any) -> tuple[Any, dict[str, dict[str, Domain]]]:
    """Move training settings written inside a student family (``lr``, ``epochs``, ...) out of it."""
    if not isinstance(raw, Mapping):
        return raw, {}
    families, overrides = {}, {}
    for family, settings in raw.items():
        settings = dict(settings or {}) if isinstance(settings, Mapping) else settings
        if isinstance(settings, dict):
            own = {k: settings.pop(k) for k in list(settings) if k in TRAINING_PARAMS}
            if own:
                overrides[str(family)] = {k: parse_domain(v, TRAINING_PARAMS[k], f"students.{family}.{k}")
                                          for k, v in own.items()}
        families[family] = settings
    return families, overrides


def _parse_components(raw: Any, registry, where: str) -> dict[str, dict[str, Domain]]:
    """``{name: {setting: domain}}`` for methods or students; a plain list of names is allowed too."""
    if isinstance(raw, list):
        raw = {name: {} for name in raw}
    if not isinstance(raw, Mapping) or not raw:
        raise RaykdInputError(f"{where}: give at least one {registry.kind}, e.g. {where}: {{{registry.names()[0]}: {{}}}}")
    parsed = {}
    for name, settings in raw.items():
        module = registry.load(registry.check(str(name), where))
        # combinations that depend on the teacher (check_space) are checked by raykd.checks
        parsed[str(name)] = parse_params(settings, module.PARAMS, f"{where}.{name}")
    return parsed


def _parse_section(cls, raw: Any, where: str):
    """Build a flat dataclass section, checking keys and scalar values."""
    if not isinstance(raw, Mapping):
        hint = f"; write it as {where}: {{path: {raw}}}" if where == "teacher" and isinstance(raw, str) else ""
        raise RaykdInputError(f"{where} must be a mapping, got {raw!r}{hint}")
    fields = cls.__dataclass_fields__
    reject_unknown(raw, fields, where)
    values = {key: _check_field(cls, key, value, f"{where}.{key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError:
        missing = [k for k, f in fields.items() if k not in values and f.default is f.default_factory]
        raise RaykdInputError(f"{where}: missing required key(s) {', '.join(missing)}") from None


_LOWER_BOUNDS = {
    # setting -> (lowest legal value, strict): everything else of a numeric type is only type-checked
    "max_length": (8, False), "train_limit": (1, False), "dev_limit": (1, False), "ood_limit": (1, False),
    "batch_size": (1, False), "num_samples": (1, False), "max_concurrent": (1, False), "num_workers": (1, False),
    "fine_tune_epochs": (1, False), "fine_tune_batch_size": (1, False), "fine_tune_lr": (0, True),
    "cpus_per_worker": (0, True), "gpus_per_worker": (0, False), "max_failures": (0, False),
    "time_budget_s": (0, True), "gpus": (0, False), "cpus": (0, True), "memory_gb": (0, False), "replicas": (1, False),
}


def _check_field(cls, key: str, value: Any, where: str) -> Any:
    """Check one value of a section against its field's type (the dataclass annotation) and bounds.

    ``null`` is a legal value only for a field whose default is None ("not set"); for every other
    field it is refused like any other wrong type.
    """
    hint = typing.get_type_hints(cls)[key]
    optional = type(None) in typing.get_args(hint)
    if value is None:
        if optional:
            return None
        default = cls.__dataclass_fields__[key].default
        raise RaykdInputError(f"{where} must be {_describe(hint, key)}, got null; give a value, or leave the key out "
                              f"for its default ({default!r})")
    if key in _SPECIAL_FIELDS:
        return _SPECIAL_FIELDS[key](value, where)
    kind = next(arg for arg in (typing.get_args(hint) or (hint,)) if arg is not type(None))
    if kind is bool:
        if not isinstance(value, bool):
            raise RaykdInputError(f"{where} must be true or false, got {_show(value)}")
        return value
    if kind in (int, float):
        low, strict = _LOWER_BOUNDS.get(key, (None, False))
        desc = _describe(kind, key)
        number = _number(value, where, integer=kind is int, desc=desc)
        if low is not None and (number <= low if strict else number < low):
            raise RaykdInputError(f"{where} must be {desc}, got {number}")
        return number
    if typing.get_origin(kind) is tuple:
        values = [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value
        if not isinstance(values, list) or not values or not all(_is_text(v) for v in values):
            raise RaykdInputError(f"{where}: give a non-empty list of names, got {_show(value)}")
        return tuple(str(v) for v in values)
    if not _is_text(value):
        raise RaykdInputError(f"{where} takes one value (text), got {_show(value)}")
    return str(value)


def _describe(hint, key: str = "") -> str:
    """What a field takes, in words (``an integer >= 1``)."""
    kinds = [arg for arg in (typing.get_args(hint) or (hint,)) if arg is not type(None)]
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a text value"}
    low, strict = _LOWER_BOUNDS.get(key, (None, False))
    bound = "" if low is None else f" {'>' if strict else '>='} {low}"
    return " or ".join(words[k] + bound if k in (int, float) else words.get(
        k, "a list" if typing.get_origin(k) is tuple else "a mapping") for k in kinds)


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML (``null``, ``true``), for messages."""
    if value is None or isinstance(value, bool):
        return yaml.safe_dump(value).split("\n")[0]
    return repr(value)


def _is_text(value: Any) -> bool:
    """A scalar that reads as text: a string, or a number (``max_length``-style ids stay numbers elsewhere)."""
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _number(value: Any, where: str, *, integer: bool, desc: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise RaykdInputError(f"{where} must be {desc}, got {_show(value)}")
    if not integer and not math.isfinite(value):
        raise RaykdInputError(f"{where} must be a finite number, got {value}")
    return int(value) if integer else float(value)


def _labels(value: Any, where: str) -> tuple[str, ...] | dict[str, str]:
    """``data.labels``: a list of values in the teacher's id order, or a mapping data value -> teacher label."""
    from raykd.data.tasks import label_key

    def text(item: Any, what: str) -> str:
        if isinstance(item, bool):
            raise RaykdInputError(f"{where}: YAML reads {_show(item)} as a boolean; quote the label "
                                  f"('{item}' as written in your files, e.g. 'yes' or 'no')")
        if not _is_text(item) or label_key(item) == "":
            raise RaykdInputError(f"{where}: each {what} must be a label value (text or a number), got {_show(item)}")
        return label_key(item)

    if isinstance(value, Mapping):
        if not value:
            raise RaykdInputError(f"{where}: the mapping is empty; map each value in your files to a teacher label, "
                                  "e.g. {0: negative, 1: positive}")
        mapping: dict[str, str] = {}
        for raw_key, target in value.items():
            key = text(raw_key, "key")
            if key in mapping:
                raise RaykdInputError(f"{where}: the value {key!r} is mapped twice (as {raw_key!r} and an equal "
                                      "spelling); keep one")
            mapping[key] = text(target, "target")
        return mapping
    values = [value] if _is_text(value) or isinstance(value, bool) else value
    if not isinstance(values, list) or not values:
        raise RaykdInputError(f"{where}: give a list of label values in the teacher's id order ([negative, "
                              "positive]) or a mapping from your files' values to the teacher's labels "
                              f"({{0: negative, 1: positive}}), got {_show(value)}")
    return tuple(text(v, "label") for v in values)


def _train_size(value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RaykdInputError(f"{where} must be examples per class (an integer >= 1) or a fraction in (0, 1), "
                              f"got {_show(value)}")
    if isinstance(value, int):
        if value < 1:
            raise RaykdInputError(f"{where} must be >= 1 example per class, got {value}")
        return value
    if not 0 < value < 1:
        raise RaykdInputError(f"{where} as a fraction must lie in (0, 1), got {value}; write an integer for "
                              "examples per class")
    return float(value)


def _resource_amounts(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise RaykdInputError(f"{where} must map resource names to amounts, e.g. {{raykd_gpu: 1}}")
    amounts = {}
    for name, amount in value.items():
        if name in ("CPU", "GPU", "memory"):
            keys = "cpus / gpus / memory_gb" if where.startswith("stages.") else "cpus_per_worker / gpus_per_worker"
            raise RaykdInputError(f"{where}.{name}: set CPUs, GPUs and memory with {keys}")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not 0 < amount < math.inf:
            raise RaykdInputError(f"{where}.{name} must be a number > 0, got {_show(amount)}")
        amounts[str(name)] = float(amount)
    return amounts


def _paths(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(v, str) and v for v in value.values()):
        raise RaykdInputError(f"{where} must map task names to teacher folders or hub ids, "
                              "e.g. {sst2: ../shared/models/minilm-sst2}")
    return {str(k): str(v) for k, v in value.items()}


_SPECIAL_FIELDS = {"train_size": _train_size, "worker_resources": _resource_amounts, "resources": _resource_amounts,
                   "paths": _paths, "labels": _labels}
"""Fields whose values are not one plain type: checked by their own function."""


def _seed(value: Any) -> int:
    seed = _int(value, "seed")
    if not 0 <= seed < 2**32:
        raise RaykdInputError(f"seed must be between 0 and 2**32 - 1, got {seed}")
    return seed


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RaykdInputError(f"{where} must be an integer, got {_show(value)}")
    return value
