"""Every task's teacher before the trials: ready ones are measured, the others fine-tuned once (cached).

The same code serves a single-task sweep (one task) and a multi-task sweep (each task):

* :func:`plan_teachers` (no Ray, writes nothing) says for each task where its teacher comes from.
  A ready teacher is loaded and measured on dev against the majority-class baseline
  (:func:`~raykd.teachers.quality.check_teacher`); a teacher to fine-tune from ``teacher.base``
  gets its cache folder (:func:`~raykd.teachers.stage.teacher_key`) and whether it is already there.
* :func:`prepare_teachers` (Ray started) runs the teacher stage for the tasks whose teacher is
  not cached (:func:`~raykd.teachers.stage.fine_tuned_teachers`: Ray tasks side by side), then
  checks and measures every fine-tuned teacher as a ready one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from raykd.checks import TaskInputs
from raykd.config import SweepConfig
from raykd.errors import RaykdInputError, RaykdStageError

__all__ = ["TeacherPlan", "plan_teachers", "prepare_teachers", "fine_tune_job", "FineTuned", "fine_tune_teacher"]


@dataclass(frozen=True)
class TeacherPlan:
    """Where one task's teacher comes from.

    Attributes:
        task: the task's name.
        path: the ready teacher, or the base encoder to fine-tune.
        fine_tune: True when the teacher stage fine-tunes ``path`` for this task.
        folder: the fine-tuned teacher's cache folder (``<storage>/cache/teachers/<key>``).
        cached: that folder already holds the teacher (no fine-tuning needed).
        check: the teacher measured on dev (ready teachers, and cached fine-tuned ones), else None.
    """

    task: str
    path: str
    fine_tune: bool
    folder: Path | None = None
    cached: bool = False
    check: Any = None

    def describe(self, space: SweepConfig) -> list[str]:
        """The plan's lines for ``raykd validate``."""
        weak = " (NOT above the baseline: teacher.allow_weak lets the sweep go on)" if self.check and self.check.weak else ""
        if not self.fine_tune:
            return [f"    measured before the sweep: {self.check.summary()}{weak}"] if self.check else []
        t = space.teacher
        lines = [f"    teacher stage: fine-tune {self.path} ({t.fine_tune_epochs} epochs, lr {t.fine_tune_lr:g}, batch "
                 f"{t.fine_tune_batch_size}, max_length {space.data.max_length}, seed {space.seed}) before the trials",
                 f"    cached in {self.folder}: " + ("already there, reused" if self.cached else "not yet (built once, "
                                                     "then reused by later sweeps)")]
        if self.check:
            lines.append(f"    cached teacher: {self.check.summary()}{weak}")
        return lines


def fine_tune_job(space: SweepConfig, task: TaskInputs):
    """The :class:`~raykd.teachers.stage.FineTuneJob` of a task whose teacher is fine-tuned from ``teacher.base``."""
    from raykd.teachers.finetune import FineTuneSettings
    from raykd.teachers.stage import FineTuneJob

    t = space.teacher
    settings = FineTuneSettings(epochs=t.fine_tune_epochs, lr=t.fine_tune_lr, batch_size=t.fine_tune_batch_size,
                                max_length=space.data.max_length, seed=space.seed)
    return FineTuneJob(task=task.inputs.task, base=task.inputs.teacher.path, settings=settings,
                       frames={k: v for k, v in task.inputs.frames.items() if k != "ood"})


def plan_teachers(space: SweepConfig, tasks: dict[str, TaskInputs], cache: Path, *, device: str = "cpu",
                  prefix: Callable[[str], str] = lambda name: "") -> dict[str, TeacherPlan]:
    """Where each task's teacher comes from, with ready (and cached fine-tuned) teachers measured on dev.

    Reads only: nothing is written to ``cache``.

    Args:
        prefix: ``task name -> text`` put before a refusal (``"task rte: "`` in multi-task sweeps).

    Raises:
        RaykdInputError: a teacher that cannot teach its task (see
            :func:`~raykd.teachers.quality.check_teacher`), or a teacher to fine-tune for a sweep
            whose methods never read the training split it would be fine-tuned on.
    """
    from raykd.teachers.stage import TEACHERS_DIR, teacher_key

    plans = {}
    for name, t in tasks.items():
        try:
            if t.fine_tune:
                if "train" not in t.inputs.frames:
                    raise RaykdInputError("teacher.fine_tune needs the task's training split, which no method of "
                                          "this sweep reads (all are data-free); give a ready teacher in teacher.path")
                folder = cache / TEACHERS_DIR / teacher_key(fine_tune_job(space, t))
                cached = (folder / "training_card.json").is_file()
                check = _measure(space, t, str(folder), cache, device, fine_tuned=True,
                                 role=f"the teacher fine-tuned for {name}, cached in") if cached else None
                plans[name] = TeacherPlan(name, t.inputs.teacher.path, True, folder, cached, check)
            else:
                plans[name] = TeacherPlan(name, t.inputs.teacher.path, False,
                                          check=_measure(space, t, t.inputs.teacher.path, cache, device))
        except RaykdInputError as err:
            raise RaykdInputError(f"{prefix(name)}{err}") from None
    return plans


def _measure(space: SweepConfig, t: TaskInputs, path: str, cache: Path, device: str, role: str = "teacher.path",
             fine_tuned: bool = False):
    """The teacher measured on dev (:func:`~raykd.teachers.quality.check_teacher`); a teacher fine-tuned on
    this data has the data's labels by construction, so a refusal suggests no other label order."""
    from raykd.teachers.quality import check_teacher

    frames = {k: v for k, v in t.inputs.frames.items() if k != "ood"}
    fix = "; raise teacher.fine_tune_epochs or fine_tune_lr, or give it more training data" if fine_tuned else None
    return check_teacher(path, t.inputs.task, frames, max_length=space.data.max_length,
                         batch_size=space.teacher.batch_size, cache_dir=cache, allow_weak=space.teacher.allow_weak,
                         device=device, role=role, label_names=() if fine_tuned else t.inputs.teacher.label_names,
                         fix=fix)


def _teacher_plan(space: SweepConfig):
    """``stages.teacher`` for the cluster Ray is connected to (GPUs per task when it has GPUs)."""
    import ray

    from raykd.stages import cluster_nodes, resolve_stages

    return resolve_stages(space, ray.cluster_resources(), cluster_nodes())["teacher"]


def prepare_teachers(space: SweepConfig, tasks: dict[str, TaskInputs], plans: dict[str, TeacherPlan], cache: Path,
                     *, device: str = "cpu", echo: Callable[[str], Any] = print
                     ) -> tuple[dict[str, TaskInputs], dict[str, TeacherPlan], dict[str, dict]]:
    """Fine-tune (or reuse) the teachers the plans call for; Ray must be started when one is missing.

    Returns:
        ``(tasks, plans, fine_tuned)``: every task with its ready teacher, the plans with each
        fine-tuned teacher measured, and task -> the stage's record (``path``, ``card``, ``cached``).

    Raises:
        RaykdStageError: a fine-tuned teacher does not beat the majority-class baseline (and
            ``teacher.allow_weak`` is false); it stays cached, the sweep folder is not created.
    """
    from raykd.teachers.load import check_teacher_labels, inspect_teacher
    from raykd.teachers.quality import weak_teacher_message
    from raykd.teachers.stage import fine_tuned_teachers

    jobs = [fine_tune_job(space, tasks[name]) for name, plan in plans.items() if plan.fine_tune]
    if not jobs:
        return tasks, plans, {}
    done = fine_tuned_teachers(jobs, cache, cpus_per_job=max(1.0, space.resources.cpus_per_worker), echo=echo,
                               plan=_teacher_plan(space))
    tasks, plans = dict(tasks), dict(plans)
    for name, teacher in done.items():
        t = tasks[name]
        info = inspect_teacher(teacher["path"])
        check_teacher_labels(info, t.inputs.task)
        one = replace(t.space, teacher=replace(t.space.teacher, path=teacher["path"], fine_tune=False))
        tasks[name] = TaskInputs(space=one, inputs=replace(t.inputs, teacher=info))
        check = _measure(replace(space, teacher=replace(space.teacher, allow_weak=True)), tasks[name],
                         teacher["path"], cache, device, fine_tuned=True)
        if check.weak and not space.teacher.allow_weak:
            raise RaykdStageError(weak_teacher_message(
                check, t.inputs.task, f"the teacher fine-tuned for {name} ({teacher['path']})",
                fix="; raise teacher.fine_tune_epochs or fine_tune_lr, or give it more training data"))
        plans[name] = replace(plans[name], cached=True, check=check)
    return tasks, plans, done


@dataclass(frozen=True)
class FineTuned:
    """A teacher ``raykd teacher fine-tune`` wrote.

    Attributes:
        folder: where it is (a Hugging Face model folder with ``training_card.json``).
        metrics: its dev metrics.
        baseline: the majority-class value of the primary metric on the same split.
        summary: one line with both, for the command's output.
    """

    folder: Path
    metrics: dict[str, float]
    baseline: float
    summary: str


def fine_tune_teacher(space: SweepConfig, *, out: str | Path | None = None, storage: str | Path = "./raykd_runs",
                      echo: Callable[[str], Any] = print, progress: bool = True) -> FineTuned:
    """Fine-tune the teacher of a single-task space whose teacher section has ``base`` + ``fine_tune: true``.

    The inputs pass the sweep's own checks first (:func:`raykd.checks.check_task_inputs`), so bad data
    or labels are refused before anything is written. Without Ray: this is ``raykd teacher fine-tune``.

    Args:
        out: the folder to write; None writes the teacher stage's cache folder under ``storage``
            (``<storage>/cache/teachers/<key>``), so a sweep of this space reuses it.

    Raises:
        RaykdInputError: bad inputs, or ``out`` / ``storage`` not a writable folder.
    """
    import contextlib

    from raykd.checks import check_task_inputs
    from raykd.data.metrics import majority_baseline
    from raykd.storage import check_storage, check_writable_folder
    from raykd.sweep.stage import rich_progress
    from raykd.teachers.finetune import fine_tune
    from raykd.teachers.stage import TEACHERS_DIR, fine_tune_into, teacher_key

    (name, task_inputs), = check_task_inputs(space, echo).items()
    job = fine_tune_job(space, task_inputs)
    task, frames = job.task, job.frames
    if out is not None:
        folder = Path(out).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise RaykdInputError(f"--out {folder} is a file; give a folder")
        check_writable_folder(folder, f"--out {folder}")
    else:
        folder = check_storage(str(storage)) / "cache" / TEACHERS_DIR / teacher_key(job)
    echo(f"fine-tuning {job.base} for {name} on {len(frames['train']):,} examples "
         f"({job.settings.epochs} epochs, lr {job.settings.lr:g}, batch {job.settings.batch_size})")
    with rich_progress() if progress else contextlib.nullcontext() as make:
        if out is not None:
            metrics = fine_tune(task, job.base, folder, frames, job.settings, progress=make)
        else:
            card = fine_tune_into(job, folder, progress=make)
            metrics = card["dev_metrics"]
    split = task.eval_splits[0]
    reference = frames["train"]["label"].to_numpy()
    baseline = float(majority_baseline(task, reference, frames[split]["label"].to_numpy())[task.primary_metric])
    shown = ", ".join(f"{k} {float(v):.4f}" for k, v in metrics.items())
    return FineTuned(folder=folder, metrics={k: float(v) for k, v in metrics.items()}, baseline=baseline,
                     summary=f"{shown} (majority-class {task.primary_metric} {baseline:.4f})")
