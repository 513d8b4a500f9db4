"""The stages of a multi-task sweep (``tasks: [...]``) before its trials, and its per-task report.

1. Teachers: tasks without a ready teacher get one fine-tuned from ``teacher.base``
   (:mod:`raykd.teachers.stage`: Ray tasks, cached by base, task, data and settings).
2. Soft targets: each task's teacher labels that task's training split (cached like a
   single-task sweep's, :mod:`raykd.sweep.stage`), and is measured on its dev split.
3. One :class:`~raykd.trial.plan.TrialContext` per task, bundled in a
   :class:`~raykd.trial.multitask.MultiTaskContext` that every trial receives.

The sweep's metric is the GLUE macro average (mean of the tasks' primary dev metrics); the
"teacher" of the macro front is the set of per-task teachers (macro of their metrics, their
parameters summed).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from raykd.checks import TaskInputs
from raykd.config import SweepConfig
from raykd.records import TeacherSummary

__all__ = ["prepare_multi_task", "finish_task_fronts", "task_infos"]


def _fine_tune_teachers(space: SweepConfig, checked: dict[str, TaskInputs], cache: Path,
                        echo: Callable[[str], Any]) -> tuple[dict[str, TaskInputs], dict[str, dict]]:
    """Fine-tune (or reuse) the teachers of the tasks that need one; return the tasks with ready teachers."""
    from raykd.teachers.finetune import FineTuneSettings
    from raykd.teachers.load import check_teacher_labels, inspect_teacher
    from raykd.teachers.stage import FineTuneJob, fine_tuned_teachers

    t = space.teacher
    settings = FineTuneSettings(epochs=t.fine_tune_epochs, lr=t.fine_tune_lr, batch_size=t.fine_tune_batch_size,
                                max_length=space.data.max_length, seed=space.seed)
    jobs = [FineTuneJob(task=c.inputs.task, base=c.inputs.teacher.path, settings=settings,
                        frames={k: v for k, v in c.inputs.frames.items() if k != "ood"})
            for c in checked.values() if c.fine_tune]
    if not jobs:
        return checked, {}
    done = fine_tuned_teachers(jobs, cache, cpus_per_job=max(1.0, space.resources.cpus_per_worker), echo=echo)
    out = dict(checked)
    for name, teacher in done.items():
        c = checked[name]
        info = inspect_teacher(teacher["path"])
        check_teacher_labels(info, c.inputs.task)
        one = replace(c.space, teacher=replace(c.space.teacher, path=teacher["path"], fine_tune=False))
        out[name] = TaskInputs(space=one, inputs=replace(c.inputs, teacher=info))
    return out, done


def prepare_multi_task(space: SweepConfig, checked: dict[str, TaskInputs], storage: Path, sweep_dir: Path, *,
                       device: str = "cpu", echo: Callable[[str], Any] = print, progress: bool = True):
    """Run the teacher and soft-target stages of every task; Ray must be started.

    Returns:
        ``(context, meta)``: the :class:`~raykd.trial.multitask.MultiTaskContext` and what
        ``sweep.json`` records (``teacher``: the macro teacher; ``baseline``; ``tasks``: per task its
        metric name, teacher summary, baseline, fine-tuning card). ``progress`` shows the soft-target
        progress bars.
    """
    from raykd.sweep.run import _context, _low_data
    from raykd.sweep.stage import build_stage
    from raykd.trial.multitask import MACRO, MultiTaskContext

    cache = storage / "cache"
    checked, fine_tuned = _fine_tune_teachers(space, checked, cache, echo)
    contexts, tasks = {}, {}
    for name, c in checked.items():
        _low_data(c.space, c.inputs, lambda line, name=name: echo(f"{name}: {line}"))
        stage = build_stage(c.space, c.inputs, cache, device=device, progress=progress)
        task = c.inputs.task
        echo(f"teacher for {name}: {task.primary_metric} {stage.teacher.metric:.4f} on {task.eval_splits[0]}, "
             f"{stage.teacher.params / 1e6:.1f}M parameters, {len(c.inputs.frames.get('train', ())):,} training "
             f"examples")
        contexts[name] = _context(c.space, c.inputs, stage, sweep_dir)
        card = fine_tuned.get(name, {}).get("card")
        tasks[name] = {"metric_name": task.primary_metric, "teacher": stage.teacher.to_dict(),
                       "baseline": stage.baseline.get(task.primary_metric, 0.0),
                       "train_examples": len(c.inputs.frames.get("train", ())),
                       "fine_tuned": None if card is None else {
                           "cached": fine_tuned[name]["cached"], "seconds": card.get("fine_tune_seconds"),
                           "epochs": card.get("epochs"), "train_rows": card.get("train_rows")}}
    n = len(tasks)
    teacher = TeacherSummary(
        path="; ".join(f"{k}: {v['teacher']['path']}" for k, v in tasks.items()),
        params=sum(v["teacher"]["params"] for v in tasks.values()),
        metric=sum(v["teacher"]["metric"] for v in tasks.values()) / n,
        metrics={k: v["teacher"]["metric"] for k, v in tasks.items()},
        latency_ms=sum(v["teacher"]["latency_ms"] or 0.0 for v in tasks.values()) / n)
    echo(f"teachers: {MACRO} {teacher.metric:.4f} over {n} tasks ({', '.join(tasks)}), "
         f"{teacher.params / 1e6:.1f}M parameters in all")
    meta = {"tasks": tasks, "teacher": teacher.to_dict(),
            "baseline": {MACRO: sum(v["baseline"] for v in tasks.values()) / n}}
    return MultiTaskContext(contexts=contexts), meta


def task_infos(meta: dict) -> list:
    """The report's :class:`~raykd.report.tasks.TaskInfo` per task, from ``sweep.json``."""
    from raykd.report.tasks import TaskInfo

    return [TaskInfo(name=name, metric_name=t["metric_name"], teacher_metric=t["teacher"]["metric"],
                     teacher_params=t["teacher"]["params"], baseline=t["baseline"]) for name, t in meta["tasks"].items()]


def finish_task_fronts(records, sweep_dir: Path, meta: dict, tracker=None, parent: str | None = None) -> None:
    """Write the per-task fronts, the combined figure and the per-task table; log them to the parent run."""
    from rich.console import Console

    from raykd.report.tasks import task_fronts_table, write_task_fronts

    infos = task_infos(meta)
    fronts = write_task_fronts(records, sweep_dir, infos, teacher_macro=meta["teacher"]["metric"],
                               teacher_params_total=meta["teacher"]["params"])
    if tracker is not None and parent:
        for path in (*fronts.csvs.values(), fronts.macro_csv, fronts.figure, fronts.table_csv):
            if path is not None and Path(path).is_file():
                tracker.log_artifact(parent, path)
        tracker.log_metrics(parent, {f"hypervolume/{k}": v for k, v in fronts.hypervolumes.items()})
    Console(width=160).print(task_fronts_table(fronts, infos))
