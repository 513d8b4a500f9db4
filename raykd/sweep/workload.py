"""What each stage of a sweep has to do, read from its checked inputs and the cluster (the cost estimate's other input).

:func:`plan_work` reads a :class:`~raykd.sweep.preflight.Preflight` and the cluster's resources
into a :class:`SweepWork`: examples per split and their token lengths (a seeded sample of real
examples, tokenised), what is already cached, the resolved stage plans
(:func:`raykd.stages.resolve_stages`: replicas, GPUs, CPUs, threads), the trials to run and
how the sampler splits them over methods, student families and transfer sets.
:func:`calibration_jobs` says what to time for each stage and :func:`run_calibrations` times it,
in-process or as Ray tasks with each stage's resources. Nothing is written.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raykd.domains import Choice, Domain, Fixed
from raykd.sweep.calibrate import MAX_CONFIGS, CalibrationJob, Measurements, calibrate, calibrate_at_worker_priority

__all__ = ["TaskWork", "FineTuneWork", "SoftWork", "TransferWork", "TrialKind", "TrialWork", "SweepWork",
           "plan_work", "calibration_jobs", "heaviest_task", "run_calibrations", "see_cluster", "sorted_batches",
           "loop_batches", "family_configs", "expected_distinct", "SAMPLE_ROWS"]

SAMPLE_ROWS = 1024
"""Real examples per task tokenised for the length distribution and the calibration batches."""

LABEL_BATCH = 128
"""Examples per teacher forward pass labelling a transfer set (:func:`raykd.transfer.store.ensure_transfer_set`)."""


@dataclass(frozen=True)
class TaskWork:
    """One task's data as the stages see it.

    Attributes:
        name: the task.
        sample: a seeded sample of its training split (of its first split without one), as read.
        lengths: token lengths of ``sample`` (the teacher's tokenizer, ``max_length``).
        train_rows: examples in the training split (0 for data-free sweeps).
        eval_lengths: token lengths of every eval split, one array per split.
        to_label: split -> examples whose soft targets are still to compute.
        fine_tune: ``no`` (a ready teacher), ``cached`` (fine-tuned before) or ``todo``.
        teacher_path: the teacher the stages run (the base encoder while ``fine_tune`` is ``todo``).
        teacher_config: its ``config.json``.
        num_labels: outputs of the task.
    """

    name: str
    sample: Any
    lengths: np.ndarray
    train_rows: int
    eval_lengths: tuple[np.ndarray, ...]
    to_label: dict[str, int]
    fine_tune: str
    teacher_path: str
    teacher_config: dict
    num_labels: int


@dataclass(frozen=True)
class FineTuneWork:
    """The teacher stage: ``epochs`` at ``batch_size``; ``slots`` teachers at once, ``threads`` each.

    ``full_speed``: how many of them the cores run at full speed (``cores // threads`` over the nodes;
    ``slots`` on GPUs). The local instance advertises one logical CPU more than the machine has cores
    (for the trials' sleeping drivers), so on 2 cores 3 one-thread teachers are scheduled at once and
    each runs at 2/3 speed."""

    epochs: int
    batch_size: int
    slots: int
    threads: int
    gpu: bool
    ray_options: dict
    full_speed: int = 0


@dataclass(frozen=True)
class SoftWork:
    """The soft-target stage: ``replicas`` teachers of ``threads`` threads (and a GPU), ``batch_size`` per pass."""

    replicas: int
    batch_size: int
    threads: int
    gpu: bool
    ray_options: dict


@dataclass(frozen=True)
class TransferWork:
    """The builds of one kind of transfer set the trials will ask for.

    Attributes:
        kind: ``tang`` or ``generation``.
        settings: the request's settings at the space's middle values (what is calibrated).
        builds: expected distinct sets built (distinct settings among the trials that ask).
        generators: expected generator trainings (generation only).
        source_rows: training examples the set is made from.
        iterations: Tang passes per example (the row count when no calibration measured it).
        samples: generated examples per set (``min(multiple x rows, max_samples)``).
        gen_epochs: generator epochs; pretrain_rows: out-of-domain texts trained on first.
        label_batch: examples per teacher forward pass when labelling.
        cached: a set of exactly these (fixed) settings is in the cache.
        task: the task whose training data the set is made from (each task of a multi-task space
            builds its own).
    """

    kind: str
    settings: dict
    builds: float
    generators: float = 0.0
    source_rows: int = 0
    iterations: int = 0
    samples: int = 0
    gen_epochs: int = 0
    pretrain_rows: int = 0
    label_batch: int = LABEL_BATCH
    cached: bool = False
    task: str = ""


@dataclass(frozen=True)
class TrialKind:
    """A (method, student family) pair and its share of the trials.

    Attributes:
        share: expected fraction of the trials.
        epochs: expected epochs; batch_size: examples per step.
        transfers: ``(transfer set, probability a trial of this kind trains on it)``.
        data_free_steps: student steps per epoch of a data-free method (0: passes over the data).
        data_free_length: tokens of its generated examples.
        students: students one trial trains: 1 for a method with one shared student (``MULTI_TASK``),
            else one per task of the space (a single-task method in a multi-task space).
    """

    method: str
    family: str
    share: float
    epochs: float
    batch_size: int
    transfers: tuple = ()
    data_free_steps: int = 0
    data_free_length: int = 0
    students: int = 1


@dataclass(frozen=True)
class TrialWork:
    """The trials: how many are left, how many run at once, on how many workers each.

    ``drawn``: ``(method, student family, its architecture settings)`` of the trials a new sweep starts
    with, as its seeded sampler will draw them (:func:`raykd.sweep.search.first_draws`); the rest are
    costed as the ``kinds`` weigh them. Empty when resuming (what is left then follows the results)."""

    trials: int
    concurrency: int
    num_workers: int
    threads: int
    gpu: bool
    kinds: tuple[TrialKind, ...]
    time_budget_s: float | None = None
    ray_options: dict = field(default_factory=dict)
    configs: dict = field(default_factory=dict)
    drawn: tuple[tuple[str, str, dict], ...] = ()


@dataclass(frozen=True)
class SweepWork:
    """Everything a sweep's stages have to do, on the cluster described by ``where`` (``ray_started``:
    Ray is already up, so no stage starts it)."""

    tasks: tuple[TaskWork, ...]
    fine_tune: FineTuneWork
    soft: SoftWork
    transfers: tuple[TransferWork, ...]
    trials: TrialWork
    where: str = ""
    ray_started: bool = False
    transfer_threads: int = 1
    transfer_ray_options: dict = field(default_factory=dict)


def sorted_batches(lengths: np.ndarray, rows: int, batch: int) -> tuple[int, int]:
    """``(batches, padded tokens)`` of ``rows`` examples like ``lengths`` in length-sorted batches (soft targets)."""
    if rows <= 0 or not len(lengths):
        return 0, 0
    drawn = np.sort(_bootstrap(lengths, rows))
    ends = np.minimum(np.arange(batch, rows + batch, batch), rows) - 1
    sizes = np.diff(np.concatenate([[-1], ends]))
    return len(ends), int((drawn[ends] * sizes).sum())


def loop_batches(lengths: np.ndarray, rows: int, batch: int) -> tuple[int, int]:
    """``(steps, padded tokens)`` of one training epoch over ``rows`` examples like ``lengths``, batched as
    :func:`raykd.distill.batching.epoch_batches` does (length-sorted inside shuffled chunks)."""
    from raykd.distill.batching import epoch_batches

    if rows <= 0 or not len(lengths):
        return 0, 0
    drawn = _bootstrap(lengths, rows)
    batches = epoch_batches(drawn, batch, epoch=1, seed=0)
    return len(batches), int(sum(len(b) * int(drawn[b].max()) for b in batches))


def _bootstrap(lengths: np.ndarray, rows: int) -> np.ndarray:
    if rows == len(lengths):
        return np.asarray(lengths)
    return np.random.default_rng(0).choice(np.asarray(lengths), size=rows, replace=True)


def expected_distinct(combinations: int | None, draws: float) -> float:
    """Expected distinct values among ``draws`` uniform draws from ``combinations`` (None: all distinct)."""
    if draws <= 0:
        return 0.0
    if combinations is None:
        return float(draws)
    return combinations * (1 - (1 - 1 / combinations) ** draws)


def _values(domain: Domain) -> tuple:
    if isinstance(domain, Fixed):
        return (domain.value,)
    if isinstance(domain, Choice):
        return tuple(domain.values)
    return (middle(domain),)


def middle(domain: Domain):
    """The space's middle value: fixed as given, a choice's middle entry, a range's (geometric) midpoint."""
    if isinstance(domain, Fixed):
        return domain.value
    if isinstance(domain, Choice):
        values = domain.values
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            values = tuple(sorted(values))
        return values[(len(values) - 1) // 2]
    mid = (domain.low * domain.high) ** 0.5 if domain.log else (domain.low + domain.high) / 2
    return int(round(mid)) if domain.is_int else mid


def expected(domain: Domain) -> float:
    """The mean value the sampler draws (uniform over a choice or a range, log-uniform on a log range)."""
    if isinstance(domain, Fixed):
        return float(domain.value)
    if isinstance(domain, Choice):
        return float(np.mean([float(v) for v in domain.values]))
    if domain.log and domain.high > domain.low:
        return float((domain.high - domain.low) / np.log(domain.high / domain.low))
    return (domain.low + domain.high) / 2


def _distinct(domain: Domain) -> int | None:
    if isinstance(domain, Fixed):
        return 1
    if isinstance(domain, Choice):
        return len(set(domain.values))
    return int((domain.high - domain.low) // (domain.step or 1)) + 1 if domain.is_int else None


def family_configs(domains: dict[str, Domain], active=None, cap: int = MAX_CONFIGS) -> list[tuple[dict, float]]:
    """Every architecture a family's settings can give, with the probability the sampler draws it.

    Settings are visited in declaration order and skipped where ``active(chosen)`` leaves them out,
    as :class:`raykd.sweep.space.DefineByRun` samples them; a range counts at its middle value.
    Beyond ``cap`` architectures, the numeric choice with the most values is taken at its middle,
    then the next, until at most ``cap`` remain.
    """
    domains = dict(domains)
    while True:
        configs = [({}, 1.0)]
        for name, domain in domains.items():
            grown = []
            for chosen, p in configs:
                if active is not None and name not in active(chosen):
                    grown.append((chosen, p))
                    continue
                values = _values(domain)
                grown += [({**chosen, name: v}, p / len(values)) for v in values]
            configs = grown
        numeric = [n for n, d in domains.items() if isinstance(d, Choice) and len(d.values) > 1
                   and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in d.values)]
        if len(configs) <= cap or not numeric:
            return configs[:cap] if len(configs) > cap else configs
        widest = max(numeric, key=lambda n: len(domains[n].values))
        domains[widest] = Fixed(middle(domains[widest]))


def see_cluster(options) -> tuple[dict[str, float], list[dict] | None, bool]:
    """``(resources, nodes, on_ray)``: Ray's view when Ray is up (``--address`` attaches first), else this
    machine as the local instance will be: its CPUs (``--num-cpus``) plus one for trial drivers, its GPUs."""
    if options.address:
        import logging

        import ray

        if not ray.is_initialized():
            ray.init(address=options.address, logging_level=logging.WARNING, log_to_driver=False)
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        from raykd.stages import cluster_nodes

        return dict(ray.cluster_resources()), cluster_nodes(), True
    from raykd.sweep.preflight import local_cpus

    return {"CPU": float(local_cpus(options) + 1), "GPU": float(_gpus())}, None, False


def _gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _where(cluster: dict, nodes: list | None, on_ray: bool) -> str:
    gpus = f"{cluster.get('GPU', 0):g} GPU(s)" if cluster.get("GPU") else "no GPU"
    if on_ray:
        return f"the Ray cluster ({len(nodes or [])} node(s), {cluster.get('CPU', 0):g} CPUs, {gpus}), as Ray tasks"
    return f"this machine ({os.cpu_count()} cores, {gpus}), in-process"


def plan_work(pre, cluster: dict[str, float], nodes: list[dict] | None = None, *, done_trials: int = 0,
              on_ray: bool = False) -> SweepWork:
    """What every stage of ``pre``'s sweep has to do on ``cluster`` (reads the cache; writes nothing).

    Args:
        pre: the checked sweep.
        cluster: ``ray.cluster_resources()``, or the local instance's ``{"CPU": n, "GPU": g}``.
        nodes: each node's resources (None: one node holding ``cluster``).
        done_trials: trials already finished (``--resume``).
        on_ray: the calibration runs as Ray tasks (said in :attr:`SweepWork.where`).
    """
    from raykd.stages import resolve_stages

    space = pre.space
    plans = resolve_stages(space, cluster, nodes)
    cores = int(max(n.get("CPU", 0) for n in nodes)) if nodes else os.cpu_count() or 1
    tasks = tuple(_task_work(pre, name, t) for name, t in pre.tasks.items())
    todo = sum(t.fine_tune == "todo" for t in tasks)
    trials = max(0, pre.num_samples - done_trials)
    transfers, per_method = _every_task_transfers(pre, tasks, trials)
    soft, sets = plans["soft_targets"], plans["transfer_sets"]
    return SweepWork(
        tasks=tasks, fine_tune=_fine_tune(space, plans["teacher"], cluster, todo, cores, nodes),
        soft=SoftWork(replicas=soft.replicas, batch_size=soft.batch_size, gpu=soft.gpus > 0,
                      threads=int(max(1, min(soft.cpus or 1, cores))), ray_options=soft.ray_options()),
        transfers=transfers, trials=_trials(pre, cluster, trials, per_method, reserve=sets if transfers else None),
        where=_where(cluster, nodes, on_ray), ray_started=on_ray,
        transfer_threads=int(max(1, min(sets.cpus or 1, cores))), transfer_ray_options=sets.ray_options())


def _task_work(pre, name: str, t) -> TaskWork:
    from raykd.data.encoding import encode_frame
    from raykd.teachers.cache import cached_split_path
    from raykd.teachers.load import inspect_teacher, load_tokenizer

    space, plan, frames = t.space, pre.teachers[name], t.inputs.frames
    task, max_length = t.inputs.task, t.space.data.max_length
    source = frames["train"] if "train" in frames else next(iter(frames.values()))
    sample = source.sample(n=min(len(source), SAMPLE_ROWS), random_state=space.seed)
    tokenizer = load_tokenizer(t.inputs.teacher.path)
    lengths = encode_frame(tokenizer, sample, max_length).lengths
    checked = plan.check.split if plan.check is not None else None
    evals = []
    for split in task.eval_splits:
        if checked == split:
            evals.append(np.asarray(plan.check.encoded.lengths))
        else:
            part = frames[split].sample(n=min(len(frames[split]), SAMPLE_ROWS), random_state=space.seed)
            evals.append(_bootstrap(encode_frame(tokenizer, part, max_length).lengths, len(frames[split])))
    if plan.fine_tune and not plan.cached:
        state, path, config = "todo", t.inputs.teacher.path, t.inputs.teacher.config
        to_label = {s: len(f) for s, f in frames.items() if s != task.eval_splits[0]}  # dev: checked after
    else:
        state = "cached" if plan.fine_tune else "no"
        path = str(plan.folder) if plan.fine_tune else t.inputs.teacher.path
        config = inspect_teacher(path).config if plan.fine_tune else t.inputs.teacher.config
        to_label = {s: len(f) for s, f in frames.items()
                    if s != checked and cached_split_path(pre.cache, path, f, max_length) is None}
    return TaskWork(name=name, sample=sample, lengths=np.asarray(lengths), train_rows=len(frames.get("train", ())),
                    eval_lengths=tuple(evals), to_label=to_label, fine_tune=state, teacher_path=path,
                    teacher_config=config, num_labels=task.num_labels)


def _fine_tune(space, plan, cluster: dict, todo: int, cores: int, nodes=None) -> FineTuneWork:
    """As :func:`raykd.teachers.stage.fine_tuned_teachers` shares the free CPUs out among the teachers."""
    from raykd.stages import teacher_task_cpus

    free = cluster.get("CPU", 1.0)
    cpus = teacher_task_cpus(plan, free=free, pending=todo, floor=max(1.0, space.resources.cpus_per_worker),
                             nodes=nodes)
    slots = max(1, min(max(todo, 1), int(free // cpus) if cpus else todo))
    if plan.gpus:
        slots = max(1, min(slots, int(cluster.get("GPU", 0) // plan.gpus) or 1))
    t = space.teacher
    threads = int(max(1, min(cpus, cores)))
    machine = sum(int(n.get("CPU", 0)) for n in nodes) if nodes else (os.cpu_count() or 1)
    full_speed = slots if plan.gpus else max(1, min(slots, machine // threads))
    return FineTuneWork(epochs=t.fine_tune_epochs, batch_size=t.fine_tune_batch_size, slots=slots, threads=threads,
                        gpu=plan.gpus > 0, ray_options=plan.ray_options(cpus), full_speed=full_speed)


def _method_shares(space, trials: int) -> dict[str, dict[str, float]]:
    """method -> ``{"share": expected fraction of trials, "tang": fraction of those with augment: tang}``.

    The first trials take each method arm once (:func:`raykd.sweep.trial_plan.first_points`), the rest draw
    methods and settings uniformly (TPE's random start-up; later trials follow the search).
    """
    from raykd.sweep.trial_plan import first_points

    methods = list(space.methods)
    points = first_points(space, trials) or []
    rest = max(trials - len(points), 0) / len(methods)
    out = {}
    for m in methods:
        augment = space.methods[m].get("augment")
        tang = (sum(v == "tang" for v in augment.values) / len(augment.values) if isinstance(augment, Choice)
                else float(isinstance(augment, Fixed) and augment.value == "tang"))
        mine = [p for p in points if p["method"] == m]
        count = len(mine) + rest
        key = f"{m}/augment"  # a first point fixes augment only where it is searched; else the space's share holds
        tangs = sum(float(p[key] == "tang") if key in p else tang for p in mine) + rest * tang
        out[m] = {"share": count / max(trials, 1), "tang": tangs / count if count else tang}
    return out


def _every_task_transfers(pre, tasks: tuple[TaskWork, ...], trials: int) -> tuple[tuple, dict[str, tuple]]:
    """:func:`_transfers` of every task: a single-task method in a multi-task space distils one student per
    task, each on a transfer set built from that task's data."""
    sets, per_method = [], {}
    for task in tasks:
        mine, methods = _transfers(pre, task, trials)
        sets += mine
        for method, pairs in methods.items():
            per_method[method] = per_method.get(method, ()) + pairs
    return tuple(sets), per_method


def _transfers(pre, task: TaskWork, trials: int) -> tuple[tuple[TransferWork, ...], dict[str, tuple]]:
    """The transfer sets the trials will ask for, and per method ``((set, probability), ...)``."""
    from raykd.registry import METHODS

    space = pre.space
    shares = _method_shares(space, trials)
    sets, per_method = [], {}
    for method, domains in space.methods.items():
        module = METHODS.load(method)
        if not hasattr(module, "transfer_requests") or not task.train_rows:
            per_method[method] = ()
            continue
        params = {name: middle(d) for name, d in domains.items()}
        base = module.transfer_requests({**params, "augment": "none"} if "augment" in domains else params)
        tang = module.transfer_requests({**params, "augment": "tang"}) if shares[method]["tang"] > 0 else []
        mine = []
        for kind, settings in [*base, *[r for r in tang if r not in base]]:
            p = 1.0 if (kind, settings) in base else shares[method]["tang"]
            work = _transfer_work(pre, task, module, domains, kind, settings, trials * shares[method]["share"] * p)
            sets.append(work)
            mine.append((work, p))
        per_method[method] = tuple(mine)
    return tuple(sets), per_method


def _transfer_work(pre, task: TaskWork, module, domains: dict, kind: str, settings: dict, asks: float) -> TransferWork:
    from raykd.transfer.augment import TangSettings

    rows, frames = task.train_rows, pre.tasks[task.name].inputs.frames
    if kind == "tang":
        names = [n for n in ("p_mask", "p_pos", "p_ng", "n_iter") if n in domains]
        combos = _product([_distinct(domains[n]) for n in names])
        iterations = TangSettings(n_iter=settings.get("n_iter") or None).iterations("text_b" in task.sample)
        return TransferWork("tang", settings, builds=expected_distinct(combos, asks), source_rows=rows,
                            iterations=iterations, cached=combos == 1 and _cached_set(pre, task, kind, settings),
                            task=task.name)
    own = [n for n in domains if n not in ("kd_loss", "temperature", "alpha", "augment", "p_mask", "p_pos", "p_ng",
                                           "n_iter")]
    combos = _product([_distinct(domains[n]) for n in own])
    trained = [n for n in getattr(module, "GENERATOR_SETTINGS", own) if n in domains]
    # the expected samples over the multiples the sampler draws (a choice's middle is its lower value)
    multiples = _values(domains["multiple"]) if "multiple" in domains else (settings["multiple"],)
    cap = settings.get("max_samples", 0)
    counts = [max(1, round(float(m) * rows)) for m in multiples]
    n = int(round(np.mean([min(c, cap) if cap else c for c in counts])))
    pretrain = len(frames["ood"]) if settings.get("pretrain_ood") and "ood" in frames else 0
    return TransferWork("generation", settings, builds=expected_distinct(combos, asks),
                        generators=expected_distinct(_product([_distinct(domains[n]) for n in trained]), asks),
                        source_rows=rows, samples=n,
                        gen_epochs=int(settings["generator"]["epochs"]), pretrain_rows=pretrain,
                        cached=combos == 1 and _cached_set(pre, task, kind, settings), task=task.name)


def _product(sizes: list[int | None]) -> int | None:
    return None if any(s is None for s in sizes) else int(np.prod(sizes or [1]))


def _cached_set(pre, task: TaskWork, kind: str, settings: dict) -> bool:
    """Whether the set of exactly these settings is in ``<cache>/transfer_sets`` (keyed as the trials key it)."""
    from raykd.teachers.cache import frame_fingerprint, teacher_fingerprint
    from raykd.transfer.store import TransferSource, transfer_key

    if task.fine_tune == "todo":
        return False
    frame = pre.tasks[task.name].inputs.frames["train"]
    source = TransferSource(train_text="", data_fingerprint=frame_fingerprint(frame), teacher_path=task.teacher_path,
                            teacher_fingerprint=teacher_fingerprint(task.teacher_path),
                            max_length=pre.space.data.max_length, cache_dir=str(pre.cache), seed=pre.space.seed,
                            num_labels=task.num_labels)
    return (pre.cache / "transfer_sets" / transfer_key(kind, settings, source) / "meta.json").is_file()


def _trials(pre, cluster: dict, trials: int, per_method: dict, *, reserve=None) -> TrialWork:
    """The trials left, split over (method, family) as the sampler draws them; ``reserve``: the transfer-set
    build's resources, kept free beside the trials as the sweep keeps them."""
    from raykd.registry import METHODS, STUDENTS
    from raykd.sweep.trial_plan import default_max_concurrent

    space, options = pre.space, pre.options
    shares = _method_shares(space, trials)
    kinds, configs = [], {}
    for family, domains in space.students.items():
        configs[family] = family_configs(domains, getattr(STUDENTS.load(family), "active", None))
    for method, domains in space.methods.items():
        module = METHODS.load(method)
        for family in space.students:
            own = space.student_training.get(family, {})

            def setting(name):
                return own.get(name, space.training[name])

            epochs = expected(setting("epochs")) + (expected(domains["finetune_epochs"])
                                                    if "finetune_epochs" in domains else 0.0)
            data_free = not getattr(module, "USES_TASK_TRAIN_DATA", True)
            length = int(middle(domains["gen_length"])) + 2 if "gen_length" in domains else space.data.max_length
            kinds.append(TrialKind(method=method, family=family, share=shares[method]["share"] / len(space.students),
                                   epochs=epochs, batch_size=int(middle(setting("batch_size"))),
                                   transfers=per_method.get(method, ()),
                                   data_free_steps=int(expected(setting("steps_per_epoch"))) if data_free else 0,
                                   data_free_length=min(length, space.data.max_length),
                                   students=1 if getattr(module, "MULTI_TASK", False) else len(pre.tasks)))
    res = space.resources
    concurrency = (options.max_concurrent or space.budget.max_concurrent
                   or default_max_concurrent(cluster, space, reserve=reserve))
    ray_options = {"num_cpus": res.cpus_per_worker, "num_gpus": res.gpus_per_worker,
                   **({"resources": dict(res.worker_resources)} if res.worker_resources else {})}
    drawn = ()
    if 0 < trials == pre.num_samples:  # a new sweep: its first draws do not depend on any result
        from raykd.sweep.search import first_draws

        drawn = tuple((c["method"], c["student"], dict(c.get(c["student"]) or {}))
                      for c in first_draws(space, pre.num_samples))
    return TrialWork(trials=trials, concurrency=int(concurrency), num_workers=res.num_workers,
                     threads=int(max(1, res.cpus_per_worker)), gpu=res.use_gpu, kinds=tuple(kinds),
                     time_budget_s=space.budget.time_budget_s, ray_options=ray_options, configs=configs,
                     drawn=drawn)


def calibration_jobs(pre, work: SweepWork) -> dict[str, CalibrationJob]:
    """What to time for each stage that has something to do (stage name -> job).

    Each job's batches are cut from the sample of the task with the most tokens of that stage's work
    (:func:`heaviest_task` over the tasks the stage touches): its lengths are where most of the time
    goes, so the fitted costs are interpolated there rather than extrapolated from a short-sentence
    task to a long pair task."""
    def common(tasks) -> dict:
        task = heaviest_task(tuple(tasks) or work.tasks)
        return {"frame": task.sample, "teacher_path": task.teacher_path, "max_length": pre.space.data.max_length,
                "num_labels": task.num_labels, "fresh_head": task.fine_tune == "todo"}

    jobs = {}
    if any(t.fine_tune == "todo" for t in work.tasks):
        ft = work.fine_tune
        jobs["teacher"] = CalibrationJob(**common(t for t in work.tasks if t.fine_tune == "todo"), threads=ft.threads,
                                         gpu=ft.gpu, teacher_forward=256, teacher_train=ft.batch_size)
    if any(t.to_label for t in work.tasks):
        jobs["soft_targets"] = CalibrationJob(**common(t for t in work.tasks if t.to_label), threads=work.soft.threads,
                                              gpu=work.soft.gpu, teacher_forward=work.soft.batch_size)
    todo = [t for t in work.transfers if not t.cached]
    if todo:
        tang = next((t.settings for t in todo if t.kind == "tang"), None)
        generation = next((t.settings for t in todo if t.kind == "generation"), None)
        names = {t.task for t in todo}
        jobs["transfer_sets"] = CalibrationJob(**common(t for t in work.tasks if t.name in names),
                                               threads=work.transfer_threads, gpu=work.trials.gpu,
                                               teacher_forward=LABEL_BATCH, tang=tang, generation=generation)
    tw = work.trials
    if tw.trials > 0:
        batch = {k.family: k.batch_size for k in tw.kinds}
        data_free = max((k.batch_size for k in tw.kinds if k.data_free_steps), default=0)
        jobs["trials"] = CalibrationJob(**common(work.tasks), threads=tw.threads, gpu=tw.gpu, students=tw.configs,
                                        student_batch=batch, teacher_config=work.tasks[0].teacher_config,
                                        teacher_train=data_free)
    return jobs


def heaviest_task(tasks: tuple[TaskWork, ...]) -> TaskWork:
    """The task with the most tokens of work: ``max(train_rows, labelled rows) x`` mean length (the first on ties)."""
    def tokens(t: TaskWork) -> float:
        rows = max(t.train_rows, sum(t.to_label.values()), 1)
        return rows * (float(np.mean(t.lengths)) if len(t.lengths) else 0.0)

    return max(tasks, key=tokens)


def run_calibrations(jobs: dict[str, CalibrationJob], work: SweepWork, *, on_ray: bool) -> dict[str, Measurements]:
    """Run every job: as Ray tasks with their stage's resources (all at once) on a cluster, else here in turn,
    each at the priority Ray gives the stage's workers (:func:`~raykd.sweep.calibrate.calibrate_at_worker_priority`)."""
    if not on_ray:
        return {stage: calibrate_at_worker_priority(job) for stage, job in jobs.items()}
    import ray

    options = {"teacher": work.fine_tune.ray_options, "soft_targets": work.soft.ray_options,
               "transfer_sets": work.transfer_ray_options, "trials": work.trials.ray_options}
    remote = ray.remote(max_retries=0)(calibrate)
    refs = {stage: remote.options(**options[stage]).remote(job) for stage, job in jobs.items()}
    return dict(zip(refs, ray.get(list(refs.values()))))
