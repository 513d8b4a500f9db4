"""How long a sweep will take on the cluster it sees, per stage, before it starts.

:func:`estimate_sweep` turns a checked sweep (:class:`~raykd.sweep.preflight.Preflight`) into a
:class:`SweepWork` (what each stage has to do: examples, epochs, batches, replicas, trials at once;
:mod:`raykd.sweep.workload`), times a few real batches of each workload on the hardware that runs
it (:func:`raykd.sweep.calibrate.calibrate`, in-process or as Ray tasks with the stages' resources)
and applies the measured costs with :func:`predict`. Every term, in seconds:

* **teacher** (teachers to fine-tune): per teacher, ``epochs x`` (fine-tuning steps over the training
  split's length-bucketed batches at ``teacher.fine_tune_batch_size`` + an evaluation pass over dev)
  + loading and saving + the check on dev after it; teachers share the free CPUs, so the stage
  takes the larger of the longest teacher and their sum over the teachers the cores run at full
  speed (fewer than run at once on the local instance, whose extra logical CPU is no core).
* **soft targets** (every split still missing from the cache): rows x tokenisation + the teacher's
  forward pass over length-sorted batches of ``stages.soft_targets.batch_size``, divided by the
  replicas, + one replica start and the teacher's measurement (its batch-1 latency), + the local
  Ray instance's start when no earlier stage started it (:data:`RAY_START_S`).
* **transfer sets**: per expected build (distinct settings the trials will ask for, per task: each
  task of a multi-task space builds its own from its training split, costed on its lengths), the rules
  (Tang: per source example, measured; its novel rows per source example measured too) or the
  generator (training ``gen_epochs x`` train rows, sampling ``min(multiple x rows, max_samples)``
  samples), then the teacher labelling those rows; summed over builds (the figure the sweep's
  ``build_seconds`` add up to).
* **trials**: per (method, student family) weighted as the sampler draws them (uniform over the
  space's choices, method arms once first), ``epochs x`` (student steps over the length-bucketed
  batches of the training split plus the expected transfer-set rows, / workers, + an evaluation
  pass over dev) + building the student + :data:`TRIAL_START_S` + :data:`PROCESS_START_S` (the
  trial's own process, started after the previous trial's are torn down); times the trials to run, over
  the trials running at once (``--max-concurrent``, ``budget.max_concurrent`` or the cluster's CPUs
  over a trial's); at most ``budget.time_budget_s``.

Stages whose outputs are in the cache (a fine-tuned teacher in ``<storage>/cache/teachers``, soft
targets in ``<storage>/cache/teacher_outputs``, a transfer set of fixed settings) count 0 s and
say ``cached``. :class:`raykd.sweep.timing.StageClock` times the real stages so ``sweep.json``
keeps estimate and actual side by side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np

from raykd.errors import RaykdInputError
from raykd.sweep.calibrate import Cost, Measurements
from raykd.sweep.workload import SweepWork, TaskWork, loop_batches, sorted_batches

__all__ = ["StageEstimate", "SweepEstimate", "estimate_sweep", "predict", "parse_duration", "format_duration",
           "deadline_warnings", "announce_estimate", "TRIAL_START_S", "PROCESS_START_S", "RAY_START_S", "STAGE_LABELS"]

TRIAL_START_S = 15.0
"""Fixed seconds of one trial inside Tune's ``time_total_s`` beyond its loop: the Ray Train worker group,
the training data read, per-epoch checkpoints and reports. Measured 14.8 s per trial by
``benchmarks/trial_overhead.py`` on the project's 2-core machine when idle (README, Performance)."""

RAY_START_S = 10.0
"""Seconds to start raykd's local Ray instance (the first stage that needs Ray pays it: the teacher stage,
else the soft-target stage; the trials' clock starts after it). About 10 s on the project's idle 2-core
machine (17-20 s measured there under a load of 4-11); attaching to a cluster (``--address``) costs none."""

PROCESS_START_S = 4.0
"""Seconds for a fresh Ray worker process to import torch and transformers before its first batch
(teacher fine-tuning tasks, soft-target replicas, each trial's own process, which Tune starts after
the previous trial's are torn down): 4.0 s measured on the project's 2-core machine."""

LATENCY_EXAMPLES = 110
"""Batch-1 forwards of the teacher's latency measurement (100 timed + 10 warm-up)."""

STAGE_LABELS = {"teacher": "teacher", "soft_targets": "soft targets", "transfer_sets": "transfer sets",
                "trials": "trials"}
"""The stages the estimate covers, in the order a sweep runs them, with their printed names."""


@dataclass(frozen=True)
class StageEstimate:
    """One stage's estimate.

    Attributes:
        stage: a key of :data:`STAGE_LABELS`.
        seconds: estimated wall seconds (0 for a cached stage or one with nothing to do).
        status: ``estimated``, ``cached`` (the outputs are in the cache) or ``none`` (nothing to do).
        detail: how the figure was made, in words and numbers.
    """

    stage: str
    seconds: float
    status: str = "estimated"
    detail: str = ""


@dataclass(frozen=True)
class SweepEstimate:
    """Every stage's estimate.

    Attributes:
        stages: one :class:`StageEstimate` per stage, in :data:`STAGE_LABELS` order.
        where: the hardware it was calibrated on, in words.
        calibration_s: wall seconds the calibration took.
        warnings: lines printed under the table (stage units that fit no node of the cluster).
    """

    stages: list[StageEstimate]
    where: str = ""
    calibration_s: float = 0.0
    warnings: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        """Sum of the stages, in seconds."""
        return sum(s.seconds for s in self.stages)

    def by_stage(self) -> dict[str, StageEstimate]:
        """Stage name -> its estimate."""
        return {s.stage: s for s in self.stages}

    def describe(self) -> str:
        """The table ``raykd validate --estimate`` and the start of a sweep print."""
        lines = [f"cost estimate on {self.where} (calibrated in {self.calibration_s:.1f} s):"]
        for s in self.stages:
            shown = format_duration(s.seconds) if s.status == "estimated" else "0 s"
            lines.append(f"  {STAGE_LABELS[s.stage]:14s} {shown:>9s}  {s.detail}")
        lines.append(f"  {'total':14s} {format_duration(self.total):>9s}")
        lines += [f"warning: {line}" for line in self.warnings]
        return "\n".join(lines)


def estimate_sweep(pre, *, done_trials: int | None = None) -> SweepEstimate:
    """Estimate every stage of a checked sweep on the cluster it will run on.

    With Ray started (``--address``: the cluster's resources and nodes) the calibration runs as Ray
    tasks with each stage's resources; otherwise on this machine, in this process, with the threads
    each stage would use (the local instance gets this machine's CPUs, one more for trial drivers).

    Args:
        pre: the sweep's :class:`~raykd.sweep.preflight.Preflight`.
        done_trials: trials already finished; None: those of ``pre``'s ``--resume`` folder (0 for a new sweep).

    Returns:
        The :class:`SweepEstimate`; nothing is written.
    """
    from raykd.sweep.workload import calibration_jobs, plan_work, run_calibrations, see_cluster

    cluster, nodes, on_ray = see_cluster(pre.options)
    done = _done_trials(pre) if done_trials is None else done_trials
    work = plan_work(pre, cluster, nodes, done_trials=done, on_ray=on_ray)
    jobs = calibration_jobs(pre, work)
    estimate = predict(work, run_calibrations(jobs, work, on_ray=on_ray))
    if nodes:
        from raykd.stages import resolve_stages, unfit_units

        estimate = replace(estimate, warnings=tuple(unfit_units(resolve_stages(pre.space, cluster, nodes), nodes)))
    return estimate


def predict(work: SweepWork, measured: dict[str, Measurements]) -> SweepEstimate:
    """Apply measured costs to a sweep's work (pure arithmetic; see the module docstring for each term).

    Args:
        work: what each stage has to do.
        measured: stage name -> what its calibration measured (a stage with nothing to do has none).
    """
    stages = [_teacher_stage(work, measured.get("teacher")), _soft_stage(work, measured.get("soft_targets")),
              _transfer_stage(work, measured.get("transfer_sets")), _trial_stage(work, measured.get("trials"))]
    return SweepEstimate(stages=stages, where=work.where, calibration_s=sum(m.seconds for m in measured.values()))


def _forward_s(cost: Cost, lengths: np.ndarray, rows: int, batch: int) -> float:
    """Seconds of a forward pass over ``rows`` examples like ``lengths`` in length-sorted batches."""
    batches, tokens = sorted_batches(lengths, rows, batch)
    return cost.seconds(batches, tokens)


def _eval_s(cost: Cost, task: TaskWork) -> float:
    return sum(_forward_s(cost, lengths, len(lengths), 256) for lengths in task.eval_lengths)


def _teacher_stage(work: SweepWork, m: Measurements | None) -> StageEstimate:
    todo = [t for t in work.tasks if t.fine_tune == "todo"]
    if not todo:
        cached = any(t.fine_tune == "cached" for t in work.tasks)
        return StageEstimate("teacher", 0.0, "cached" if cached else "none",
                             "cached: the fine-tuned teacher is in the cache" if cached
                             else "none: a ready teacher (teacher.path), nothing to fine-tune")
    ft = work.fine_tune
    each, train = [], 0.0
    for t in todo:
        epoch = m.teacher_train.seconds(*loop_batches(t.lengths, t.train_rows, ft.batch_size))
        train += epoch
        # epochs x (steps + dev pass), a worker start, load + save + the reload of the check, the check's dev pass
        each.append(ft.epochs * (epoch + _eval_s(m.teacher_forward, t)) + PROCESS_START_S + 3 * m.teacher_load
                    + _eval_s(m.teacher_forward, t))
    # more teachers at once than the cores carry (the local instance's extra logical CPU): each runs slower
    full = max(1, min(ft.slots, len(todo), ft.full_speed or ft.slots))
    slower = min(ft.slots, len(todo)) / full
    seconds = max(max(each) * slower, sum(each) / full) + (0.0 if work.ray_started else RAY_START_S)
    rows = sum(t.train_rows for t in todo)
    shared = f", {full} at full speed" if slower > 1 else ""
    return StageEstimate("teacher", seconds, detail=(
        f"{len(todo)} teacher(s) x {rows // len(todo):,} examples x {ft.epochs} epoch(s) x "
        f"{train / max(rows, 1) * 1e3:.2f} ms + dev passes, {ft.slots} at once ({ft.threads} thread(s) each{shared})"))


def _soft_stage(work: SweepWork, m: Measurements | None) -> StageEstimate:
    soft = work.soft
    rows = {f"{t.name}/{s}" if len(work.tasks) > 1 else s: n for t in work.tasks for s, n in t.to_label.items()}
    if not rows:
        return StageEstimate("soft_targets", 0.0, "cached", "cached: every split's soft targets are in the cache")
    seconds = 0.0
    for t in work.tasks:
        for n in t.to_label.values():
            seconds += _forward_s(m.teacher_forward, t.lengths, n, soft.batch_size) + n * m.tokenize.per_unit
    # per task (each task's teacher is its own stage run): a replica starting and loading the teacher; the stage
    # loading it again to measure it (latency: batch-1 forwards)
    runs = sum(1 for t in work.tasks if t.to_label)
    fixed = runs * (PROCESS_START_S + 2 * m.teacher_load + LATENCY_EXAMPLES * m.teacher_latency)
    if not work.ray_started and not any(t.fine_tune == "todo" for t in work.tasks):
        fixed += RAY_START_S  # the replicas are Ray actors: this stage starts the local instance
    total = seconds / soft.replicas + fixed
    shown = ", ".join(f"{n:,} ({name})" for name, n in rows.items())
    return StageEstimate("soft_targets", total, detail=(
        f"{shown} examples x {seconds / sum(rows.values()) * 1e3:.2f} ms / {soft.replicas} replica(s) of "
        f"{soft.threads} thread(s){' + GPU' if soft.gpu else ''}, + {fixed:.0f} s start and teacher measurement"))


def _transfer_stage(work: SweepWork, m: Measurements | None) -> StageEstimate:
    if not work.transfers:
        return StageEstimate("transfer_sets", 0.0, "none", "none: no method of the space builds one")
    if all(t.cached for t in work.transfers):
        return StageEstimate("transfer_sets", 0.0, "cached", "cached: the space's transfer sets are in the cache")
    seconds, parts = 0.0, []
    tasks = {t.name: t for t in work.tasks}
    for t in (t for t in work.transfers if not t.cached):
        each, rows = _build_s(t, tasks.get(t.task, work.tasks[0]), m)
        seconds += t.builds * each + t.generators * _generator_s(t, m)
        parts.append(f"{t.kind} {t.builds:.1f} build(s) x {rows:,} rows" + (
            f" + {t.generators:.1f} generator training(s)" if t.kind == "generation" else ""))
    return StageEstimate("transfer_sets", seconds, detail="; ".join(parts) + " (summed: builds run inside trials)")


def _transfer_rows(t, m: Measurements | None) -> int:
    """Rows of one built set: Tang's measured novel rows per source example (else ``n_iter``), or the samples."""
    if t.kind == "tang":  # measured per pass: sentence tasks make more passes than pair tasks
        ratio = m.tang_rows * t.iterations if m is not None and m.tang_rows is not None else t.iterations
        return int(round(ratio * t.source_rows))
    return t.samples


def _build_s(t, task: TaskWork, m: Measurements) -> tuple[float, int]:
    rows = _transfer_rows(t, m)
    label = _forward_s(m.teacher_forward, task.lengths, rows, t.label_batch) + rows * m.tokenize.per_unit
    if t.kind == "tang":
        return m.tang.seconds(1, t.source_rows) + label + m.teacher_load, rows
    return m.generator_sample.seconds(1, rows) + label + m.teacher_load, rows


def _generator_s(t, m: Measurements) -> float:
    if t.kind != "generation" or m.generator_train is None:
        return 0.0
    return m.generator_train.seconds(1, t.gen_epochs * (t.source_rows + t.pretrain_rows))


def _trial_stage(work: SweepWork, m: Measurements | None) -> StageEstimate:
    tw = work.trials
    if tw.trials <= 0:
        return StageEstimate("trials", 0.0, "none", "none: every trial already finished")
    expected, parts = 0.0, []
    for kind in tw.kinds:
        seconds = _trial_s(kind, work, m)
        expected += kind.share * seconds
        parts.append(f"{kind.method}/{kind.family} {kind.share:.0%}: {kind.epochs:g} epoch(s) x "
                     f"{_rows(kind, work, m):,} rows, {seconds:.0f} s")
    kinds = {(k.method, k.family): k for k in tw.kinds}
    drawn = [_trial_s(kinds[method, family], work, m, architecture)
             for method, family, architecture in tw.drawn[:tw.trials] if (method, family) in kinds]
    at_once, rest = max(1, min(tw.concurrency, tw.trials)), tw.trials - len(drawn)
    seconds = (sum(drawn) + rest * expected) / at_once
    capped = tw.time_budget_s is not None and seconds > tw.time_budget_s
    start = TRIAL_START_S + PROCESS_START_S
    shown = f"{tw.trials} trial(s) x {expected:.0f} s"
    if drawn:
        shown = (f"{tw.trials} trial(s): the sampler's first {len(drawn)} draws {sum(drawn):.0f} s"
                 + (f" + {rest} more x {expected:.0f} s" if rest else ""))
    detail = (f"{shown} / {at_once} at once (each + {start:.0f} s start): "
              + "; ".join(parts) + (f"; capped by budget.time_budget_s {tw.time_budget_s:g} s" if capped else ""))
    return StageEstimate("trials", min(seconds, tw.time_budget_s) if capped else seconds, detail=detail)


def _rows(kind, work: SweepWork, m: Measurements | None) -> int:
    if kind.data_free_steps:
        return kind.data_free_steps * kind.batch_size
    extra = sum(share * _transfer_rows(t, m) for t, share in kind.transfers)
    return int(sum(t.train_rows for t in work.tasks) + extra)


def _trial_s(kind, work: SweepWork, m: Measurements, architecture: dict | None = None) -> float:
    """One trial of ``kind``: epochs x (training steps / workers + evaluation) + build + start; with
    ``architecture`` (a drawn trial's student settings), its own calibrated step cost, else the family's mean."""
    step, evaluation = _student_costs(m, kind.family, architecture)
    if kind.data_free_steps:  # per student: a single-task method in a multi-task space trains one per task
        tokens = kind.data_free_steps * kind.batch_size * kind.data_free_length
        train = step.seconds(kind.data_free_steps, tokens)
        if m.teacher_train is not None:  # the teacher runs (and back-propagates) on every generated batch
            train += m.teacher_train.seconds(kind.data_free_steps, tokens)
        train *= kind.students
    else:
        train = 0.0
        for i, task in enumerate(work.tasks):  # each task's own transfer set (a set without a task: the first's)
            extra = sum(share * _transfer_rows(t, m) for t, share in kind.transfers
                        if t.task == task.name or (not t.task and i == 0))
            rows = task.train_rows + int(extra)
            train += step.seconds(*loop_batches(task.lengths, rows, kind.batch_size))
    evaluate = sum(_eval_s(evaluation, t) for t in work.tasks)
    epoch = train / work.trials.num_workers + evaluate
    return kind.epochs * epoch + kind.students * m.student_build.get(kind.family, 0.0) + TRIAL_START_S + PROCESS_START_S


def _student_costs(m: Measurements, family: str, architecture: dict | None) -> tuple[Cost, Cost]:
    """(training step, evaluation) costs: of the calibrated architectures that agree with ``architecture`` on
    the most settings (averaged on ties; a sampled range never equals the middle value timed), else the mean."""
    timed = m.architectures.get(family) or []
    if architecture is None or not timed:
        return m.students[family], m.student_eval[family]
    agree = [sum(architecture.get(k) == v for k, v in params.items()) for params, _, _ in timed]
    best = [(step, ev) for (_, step, ev), n in zip(timed, agree) if n == max(agree)]
    return (Cost(float(np.mean([s.per_call for s, _ in best])), float(np.mean([s.per_unit for s, _ in best]))),
            Cost(0.0, float(np.mean([e.per_unit for _, e in best]))))


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """``90m``, ``24h``, ``3600s``, ``1.5d`` or plain seconds -> seconds.

    Raises:
        RaykdInputError: anything else, or a duration that is not > 0.
    """
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)\s*", str(text).lower())
    if not found or float(found.group(1)) <= 0:
        raise RaykdInputError(f"--deadline {text}: give a duration > 0 with a unit s, m, h or d, "
                              "e.g. 90m, 24h, 3600s or 1.5d")
    return float(found.group(1)) * _UNITS[found.group(2)]


def format_duration(seconds: float) -> str:
    """``42 s``, ``14.2 min``, ``3.4 h``, ``1.6 d``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def deadline_warnings(estimate: SweepEstimate, deadline_s: float, num_trials: int | None = None) -> list[str]:
    """One ``warning:`` line for the total and one per stage that alone will not fit ``deadline_s``; [] if it fits.

    Args:
        num_trials: the trials the estimate covers, to say how many would fit.
    """
    if estimate.total <= deadline_s:
        return []
    limit = format_duration(deadline_s)
    lines = [f"warning: the sweep is estimated at {format_duration(estimate.total)}, more than the deadline of "
             f"{limit}{_fit_hint(estimate, deadline_s, num_trials)}"]
    for s in estimate.stages:
        if s.seconds > deadline_s:
            lines.append(f"warning: the {STAGE_LABELS[s.stage]} stage alone is estimated at "
                         f"{format_duration(s.seconds)}, more than the deadline of {limit}")
    return lines


def _fit_hint(estimate: SweepEstimate, deadline_s: float, num_trials: int | None) -> str:
    trials = estimate.by_stage()["trials"].seconds
    left = deadline_s - (estimate.total - trials)
    if not num_trials or trials <= 0 or left <= 0:
        return ""
    fits = int(num_trials * left / trials)
    return (f"; about {fits} of the {num_trials} trials fit (--num-samples {fits}, or budget.time_budget_s "
            f"{left:.0f} to stop the trials in time)") if fits >= 1 else ""


def announce_estimate(pre, *, deadline_s: float | None = None) -> SweepEstimate | None:
    """Estimate a sweep about to start, print the table (and deadline warnings) with ``pre.options.echo``.

    The estimate only informs: if it fails, a warning line says why and the sweep goes on (None).
    For ``--resume`` only the trials not yet finished are estimated.
    """
    echo = pre.options.echo
    try:
        estimate = estimate_sweep(pre)
    except Exception as err:  # noqa: BLE001 - advisory: a failed estimate never stops a sweep
        echo(f"warning: no cost estimate ({type(err).__name__}: {' '.join(str(err).split())[:300]})")
        return None
    echo(estimate.describe())
    for line in deadline_warnings(estimate, deadline_s, pre.num_samples) if deadline_s else ():
        echo(line)
    return estimate


def _done_trials(pre) -> int:
    """Trials of a resumed sweep that finished (or failed) already; 0 for a new sweep."""
    if pre.resume_dir is None:
        return 0
    from raykd.sweep.results import read_trials

    records = read_trials(pre.resume_dir / "tune", pre.meta["metric_name"])
    return sum(r.status in ("TERMINATED", "ERROR") for r in records)
