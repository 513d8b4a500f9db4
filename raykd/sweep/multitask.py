"""The stages of a multi-task sweep (``tasks: [...]``) before its trials, and its per-task report.

1. Teachers: tasks without a ready teacher get one fine-tuned from ``teacher.base``
   (:mod:`raykd.sweep.teachers`, the same code as single-task sweeps: Ray tasks, cached by base,
   task, data and settings).
2. Soft targets: each task's teacher labels that task's training split (cached like a
   single-task sweep's, :mod:`raykd.sweep.stage`), and is measured on its dev split.
3. One :class:`~raykd.trial.plan.TrialContext` per task, bundled in a
   :class:`~raykd.trial.multitask.MultiTaskContext` that every trial receives.

The sweep's metric is the GLUE macro average (mean of the tasks' primary dev metrics); the
"teacher" of the macro front is the set of per-task teachers (macro of their metrics, their
parameters summed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from raykd.checks import TaskInputs
from raykd.config import SweepConfig
from raykd.records import TeacherSummary

__all__ = ["prepare_multi_task", "finish_task_fronts", "task_infos"]


def prepare_multi_task(space: SweepConfig, checked: dict[str, TaskInputs], plans: dict, fine_tuned: dict[str, dict],
                       storage: Path, sweep_dir: Path, *, device: str = "cpu", echo: Callable[[str], Any] = print,
                       progress: bool = True, loopback: bool = False, compute=None):
    """Run the soft-target stage of every task, once every task has its teacher.

    Args:
        checked: task -> its inputs, each with a ready teacher (after
            :func:`raykd.sweep.teachers.prepare_teachers`).
        plans: task -> its :class:`~raykd.sweep.teachers.TeacherPlan` (the dev outputs measured before).
        fine_tuned: task -> the teacher stage's record, for the tasks whose teacher it fine-tuned.

    Returns:
        ``(context, meta)``: the :class:`~raykd.trial.multitask.MultiTaskContext` and what
        ``sweep.json`` records (``teacher``: the macro teacher; ``baseline``; ``tasks``: per task its
        metric name, teacher summary, baseline, fine-tuning card). ``progress`` shows the soft-target
        progress bars; ``compute`` labels missing splits elsewhere (see :func:`raykd.sweep.stage.build_stage`).
    """
    from raykd.sweep.contexts import low_data_summary, trial_context
    from raykd.sweep.stage import build_stage
    from raykd.trial.multitask import MACRO, MultiTaskContext

    cache = storage / "cache"
    contexts, tasks = {}, {}
    for name, c in checked.items():
        low_data_summary(c.space, c.inputs, lambda line, name=name: echo(f"{name}: {line}"))
        stage = build_stage(c.space, c.inputs, cache, device=device, progress=progress, teacher_check=plans[name].check,
                            compute=compute)
        task = c.inputs.task
        echo(f"teacher for {name}: {task.primary_metric} {stage.teacher.metric:.4f} on {task.eval_splits[0]}, "
             f"{stage.teacher.params / 1e6:.1f}M parameters, {len(c.inputs.frames.get('train', ())):,} training "
             f"examples")
        contexts[name] = trial_context(c.space, c.inputs, stage, sweep_dir, loopback=loopback)
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
