"""Run a sweep: check inputs, build the shared stage, run Ray Tune + Optuna, track, report.

Layout of one sweep under the storage folder (``./raykd_runs`` by default)::

    raykd_runs/
      cache/teacher_outputs/<key>/      soft targets, shared by every sweep
      mlflow.db, mlartifacts/           the default MLflow store
      <name>-<YYYYmmdd-HHMMSS>/         this sweep
        space.yaml  sweep.json          the space as given; task, teacher, MLflow ids
        optuna.db                       Optuna's study (multi-objective TPE)
        tune/trial-<id>/                Tune's per-trial params.json, result.json, error.txt
        train_runs/trial-<id>/epoch_N/  student checkpoints (safetensors + JSON)
        trials.csv  pareto.csv  pareto.png
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from raykd.config import SweepConfig
from raykd.sweep.contexts import low_data_summary, trial_context
from raykd.sweep.finish import SweepOutcome, finish_sweep
from raykd.sweep.preflight import Preflight, SweepOptions, preflight, read_resume_meta
from raykd.sweep.trial_plan import (DRIVER_CPU, default_max_concurrent, first_points, startup_trials,  # noqa: F401
                                    transfer_reserve)
from raykd.trial.plan import TrialContext

__all__ = ["SweepOptions", "SweepOutcome", "run_sweep", "resume_sweep", "default_max_concurrent"]
# SweepOptions lives in raykd.sweep.preflight (the checks need it) and is re-exported here, where callers look.


def _start_ray(options: SweepOptions) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if options.address:
        ray.init(address=options.address, **kwargs)
    else:
        # "local": always a fresh instance of our own, never a cluster some other program left
        # running, reachable from this machine only (every Ray socket on 127.0.0.1). One logical CPU
        # more than the workers get: the trials' drivers (DRIVER_CPU each) sleep while their workers
        # train, and without it the last trial's workers could not be placed. The raylet, and so every
        # worker it starts, inherits LOCAL_TRAIN_SETTINGS (a variable the user set is kept).
        from raykd.sweep.local_ray import start_local_ray

        start_local_ray((options.num_cpus or os.cpu_count()) + 1, env=LOCAL_TRAIN_SETTINGS, **kwargs)


LOCAL_TRAIN_SETTINGS = {
    # One machine has no node that a cloud provider could preempt, so Ray Train's per-trial
    # preemption watcher (one more Python process per trial) only costs start-up time.
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
    # Ray Train's controller polls its workers every 2 s by default; a finished trial waits for the
    # next poll before it frees its slot. Polling a local worker costs microseconds.
    "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5",
}
"""Ray Train settings raykd uses on a local instance it starts itself (not with ``--address``)."""



def _sweep_dir(storage: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = storage / f"{name}-{stamp}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = storage / f"{name}-{stamp}-{suffix}"
    folder.mkdir(parents=True)
    return folder


def _stage(pre: Preflight, task_inputs, teacher_plan):
    """The single-task soft-target stage: the teacher's outputs on every split (cached), its figures."""
    from raykd.sweep.stage import build_stage

    stage = build_stage(task_inputs.space, task_inputs.inputs, pre.cache, device=pre.device,
                        teacher_check=teacher_plan.check, compute=_soft_targets(pre))
    task = task_inputs.inputs.task
    pre.options.echo(f"teacher: {task.primary_metric} {stage.teacher.metric:.4f} on {task.eval_splits[0]}, "
                     f"{stage.teacher.params / 1e6:.1f}M parameters, {stage.teacher.latency_ms:.2f} ms/example")
    return stage


def _teachers(pre: Preflight):
    """Run the teacher stage where a task's teacher is still to be fine-tuned (starting Ray for it).

    Returns:
        ``(tasks, plans, fine_tuned)`` of :func:`raykd.sweep.teachers.prepare_teachers`.
    """
    from raykd.sweep.teachers import prepare_teachers

    if any(plan.fine_tune and not plan.cached for plan in pre.teachers.values()):
        _start_ray(pre.options)
    tasks, plans, fine_tuned = prepare_teachers(pre.space, pre.tasks, pre.teachers, pre.cache, device=pre.device,
                                                echo=pre.options.echo)
    for name, plan in plans.items():
        if plan.check is not None and plan.check.weak:
            pre.options.echo(f"warning: the teacher for {name} does not beat the majority class "
                             f"({plan.check.summary()}); distilling from it because teacher.allow_weak is true")
    return tasks, plans, fine_tuned


def run_sweep(space: SweepConfig, options: SweepOptions = SweepOptions(), *, estimate: bool = True,
              deadline_s: float | None = None) -> SweepOutcome:
    """Run a whole sweep and write its report.

    Every check (:func:`~raykd.sweep.preflight.preflight`) runs before anything is written or Ray
    starts. Then the cost estimate is printed (:func:`~raykd.sweep.estimate.announce_estimate`, a
    few seconds of calibration; ``estimate=False`` skips it), and in order: the teacher stage
    (teachers to fine-tune, cached), the sweep folder and MLflow experiment, the soft-target stage
    (cached), the trials. A failing trial is recorded (status ERROR, reason in trials.csv and its
    MLflow run) and the sweep goes on; the report is written even if the sweep is interrupted, and
    ``resume_sweep`` continues it. Each stage is timed: ``sweep.json`` (``stages``) and
    ``stages.csv`` hold its estimate beside its actual seconds.

    Args:
        estimate: print the cost estimate before the first stage.
        deadline_s: warn when the estimate does not fit in this many seconds.

    Raises:
        RaykdInputError: bad search space, data, teacher, storage, tracking URI or resources
            (nothing is written).
        RaykdStageError: a fine-tuned teacher no better than the majority class (it stays cached;
            no sweep folder is created).
    """
    from raykd.sweep.estimate import announce_estimate
    from raykd.sweep.timing import StageClock
    from raykd.tracking.mlflow import SweepTracker

    pre = preflight(space, options)
    clock = StageClock(pre.cache, announce_estimate(pre, deadline_s=deadline_s) if estimate else None)
    with clock.stage("teacher"):
        tasks, plans, fine_tuned = _teachers(pre)
    storage, echo = pre.storage, options.echo
    # a local store keeps artifacts beside it; a tracking server uses its own artifact store
    local_store = pre.tracking_uri.startswith(("sqlite:", "file:"))
    tracker = SweepTracker.for_experiment(pre.tracking_uri, f"raykd-{space.name}",
                                          storage / "mlartifacts" if local_store else None)
    sweep_dir = _sweep_dir(storage, space.name)
    (sweep_dir / "space.yaml").write_text(space.source)
    echo(f"sweep folder: {sweep_dir}")
    num_samples = pre.num_samples
    if space.multi_task:
        with clock.stage("soft_targets"):
            context, task_meta = _multi_task_stage(pre, tasks, plans, fine_tuned, sweep_dir)
        names = list(task_meta["tasks"])
        params = {"task": "+".join(names), "tasks": ",".join(names), "teacher": task_meta["teacher"]["path"][:480],
                  "num_samples": num_samples}
        meta = {"name": space.name, "task": "+".join(names), "metric_name": "macro", "num_samples": num_samples,
                **task_meta}
    else:
        (name, task_inputs), = tasks.items()
        low_data = low_data_summary(task_inputs.space, task_inputs.inputs, echo)
        with clock.stage("soft_targets"):
            stage = _stage(pre, task_inputs, plans[name])
        inputs = task_inputs.inputs
        params = {"task": inputs.task.name, "teacher": stage.teacher.path, "num_samples": num_samples, **low_data}
        meta = {"name": space.name, "task": inputs.task.name, "metric_name": inputs.task.primary_metric,
                "teacher": stage.teacher.to_dict(), "baseline": stage.baseline, "num_samples": num_samples,
                **low_data, **_fine_tune_meta(fine_tuned.get(name))}
        context = trial_context(task_inputs.space, inputs, stage, sweep_dir, loopback=not options.address)
    parent = tracker.start_sweep(sweep_dir.name, params)
    tracker.log_artifact(parent, sweep_dir / "space.yaml")
    meta.update(mlflow_uri=pre.tracking_uri, mlflow_parent_run_id=parent, **clock.record())
    (sweep_dir / "sweep.json").write_text(json.dumps(meta, indent=1))
    return _fit(space, options, context, sweep_dir, tracker, num_samples, restore=False, clock=clock)


def _fine_tune_meta(record: dict | None) -> dict:
    """What ``sweep.json`` keeps of a teacher the teacher stage fine-tuned (``{}`` for a ready teacher)."""
    if record is None:
        return {}
    card = record["card"]
    return {"fine_tuned": {"cached": record["cached"], "seconds": card.get("fine_tune_seconds"),
                           "epochs": card.get("epochs"), "train_rows": card.get("train_rows"),
                           "base": card.get("base"), "path": record["path"]}}


def _multi_task_stage(pre: Preflight, tasks, plans, fine_tuned, sweep_dir: Path):
    """The soft-target stage of every task of a multi-task sweep (see :mod:`raykd.sweep.multitask`)."""
    from raykd.sweep.multitask import prepare_multi_task

    return prepare_multi_task(pre.space, tasks, plans, fine_tuned, pre.storage, sweep_dir, device=pre.device,
                              echo=pre.options.echo, loopback=not pre.options.address, compute=_soft_targets(pre))


def _soft_targets(pre: Preflight):
    """The soft-target stage's ``compute``: teacher replicas as Ray Data actors on the cluster (Ray is
    started only if a split is missing from the cache), sized by ``stages.soft_targets``."""
    from raykd.stages import cluster_nodes, resolve_stages
    from raykd.teachers.batch_inference import ray_soft_targets

    def plan():
        import ray

        return resolve_stages(pre.space, ray.cluster_resources(), cluster_nodes())["soft_targets"]

    return ray_soft_targets(plan, start_ray=lambda: _start_ray(pre.options), echo=pre.options.echo)


def resume_sweep(sweep_dir: str | Path, options: SweepOptions = SweepOptions(), *, estimate: bool = True,
                 deadline_s: float | None = None) -> SweepOutcome:
    """Continue an interrupted sweep folder (``raykd sweep --resume DIR``).

    Restores Tune's experiment and Optuna's searcher from the folder: finished trials are kept and
    not rerun, unfinished ones restart from their last checkpoint (Ray Train resumes the run named
    after the trial), and Optuna proposes the remaining trials. The space is the folder's own
    ``space.yaml``; teacher soft targets come from the cache. Trials keep their MLflow runs.
    ``estimate`` and ``deadline_s`` as for :func:`run_sweep` (the trials left are estimated; the
    resumed run's stage times go to ``resumed_stages`` in ``sweep.json``).

    Raises:
        RaykdInputError: not a sweep folder, a damaged ``sweep.json``, nothing to resume, or inputs
            that no longer check (nothing is written).
    """
    from raykd.config import load_space
    from raykd.sweep.estimate import announce_estimate
    from raykd.sweep.timing import StageClock
    from raykd.tracking.mlflow import SweepTracker

    meta = read_resume_meta(sweep_dir)
    sweep_dir = Path(sweep_dir).resolve()
    space = load_space(sweep_dir / "space.yaml")
    pre = preflight(space, options, resume_dir=sweep_dir, meta=meta)
    clock = StageClock(pre.cache, announce_estimate(pre, deadline_s=deadline_s) if estimate else None)
    with clock.stage("teacher"):
        tasks, plans, fine_tuned = _teachers(pre)
    tracker = SweepTracker.for_experiment(pre.tracking_uri, f"raykd-{space.name}",
                                          parent_run_id=meta["mlflow_parent_run_id"])
    options.echo(f"resuming sweep folder: {sweep_dir}")
    with clock.stage("soft_targets"):
        if space.multi_task:  # teachers and soft targets come from the cache
            context, _ = _multi_task_stage(pre, tasks, plans, fine_tuned, sweep_dir)
        else:
            (name, task_inputs), = tasks.items()
            stage = _stage(pre, task_inputs, plans[name])
            context = trial_context(task_inputs.space, task_inputs.inputs, stage, sweep_dir,
                                    loopback=not options.address)
    return _fit(space, options, context, sweep_dir, tracker, pre.num_samples, restore=True, clock=clock)


def _metric_name(context) -> str:
    """The metric trials report: the task's primary metric, or ``macro`` in a multi-task sweep."""
    return context.task.primary_metric if isinstance(context, TrialContext) else "macro"


def _fit(space, options, context, sweep_dir: Path, tracker, num_samples: int, *, restore: bool,
         clock=None) -> SweepOutcome:
    """Run (or restore) the trials, then write the report; ``clock`` (a :class:`~raykd.sweep.timing.StageClock`)
    times the trials (Ray's own start excluded) and shows every stage's estimate beside its actual time."""
    import contextlib

    interrupted = True
    try:
        _start_ray(options)
        with clock.stage("trials") if clock is not None else contextlib.nullcontext():
            _run_tuner(space, options, context, sweep_dir, tracker, num_samples, restore)
        interrupted = False
    finally:
        outcome = finish_sweep(sweep_dir, tracker=tracker, interrupted=interrupted, echo=options.echo)
        if clock is not None:
            clock.finish(sweep_dir, tracker=tracker, echo=options.echo, resumed=restore)
        done = [r for r in outcome.records if r.status in ("TERMINATED", "ERROR")]
        if interrupted or len(done) < num_samples:
            options.echo(f"{len(done)} of {num_samples} trials done; continue with: "
                         f"raykd sweep --resume {sweep_dir}")
    return outcome


def _trainable(context):
    from ray import tune

    from raykd.trial.driver import run_trial

    return tune.with_resources(tune.with_parameters(run_trial, context=context), {"CPU": DRIVER_CPU})


def _run_tuner(space: SweepConfig, options: SweepOptions, context: TrialContext, sweep_dir: Path, tracker,
               num_samples: int, restore: bool) -> None:
    import optuna
    import ray
    from ray import tune

    from raykd.sweep.callbacks import MlflowTrialCallback
    from raykd.sweep.progress import ProgressCallback
    from raykd.sweep.search import sweep_searcher

    _start_ray(options)
    if restore:
        # Tune restores the searcher (Optuna's study is in optuna.db) and the callbacks it pickled
        tuner = tune.Tuner.restore(str(sweep_dir / "tune"), trainable=_trainable(context),
                                   resume_unfinished=True, resume_errored=False)
        tuner.fit()
        return
    if options.address:
        _warn_if_too_small(ray.cluster_resources(), space, options.echo)
    cluster = ray.cluster_resources()
    concurrent = (options.max_concurrent or space.budget.max_concurrent
                  or default_max_concurrent(cluster, space, reserve=transfer_reserve(space, context, cluster)))
    options.echo(f"running {num_samples} trials, at most {concurrent} at once")
    searcher = sweep_searcher(space, num_samples, study_name=sweep_dir.name, tracker=tracker,
                              storage=optuna.storages.RDBStorage(f"sqlite:///{sweep_dir / 'optuna.db'}"))
    tuner = tune.Tuner(
        _trainable(context),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=num_samples, max_concurrent_trials=concurrent,
                                    time_budget_s=space.budget.time_budget_s,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(name="tune", storage_path=str(sweep_dir), verbose=0,
                                  callbacks=[ProgressCallback(_metric_name(context), num_samples, options.echo,
                                                              live=options.live),
                                             MlflowTrialCallback(tracker, _metric_name(context))]),
    )
    tuner.fit()


def _warn_if_too_small(cluster: dict[str, float], space: SweepConfig, echo) -> None:
    """Say when a cluster cannot place one trial now (an autoscaler may add nodes, so it is not an error)."""
    res = space.resources
    needs = {"CPU": res.num_workers * res.cpus_per_worker + DRIVER_CPU, "GPU": res.num_workers * res.gpus_per_worker,
             **{name: res.num_workers * amount for name, amount in res.worker_resources.items()}}
    short = [f"{need:g} {name} (the cluster has {cluster.get(name, 0):g})" for name, need in needs.items()
             if need > cluster.get(name, 0) + 1e-9]
    if short:
        echo(f"warning: a trial needs {', '.join(short)}; trials wait until the cluster's autoscaler adds nodes "
             "that have them")


def _trial_name(trial) -> str:
    return f"trial-{trial.trial_id}"
