"""The end of a sweep (or ``raykd report DIR`` later): records -> report files -> MLflow -> table."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from raykd.records import TeacherSummary, TrialResult
from raykd.report import Report, front_table, write_report
from raykd.sweep.results import read_sweep_meta, read_trials

__all__ = ["finish_sweep", "read_sweep_meta", "SweepOutcome"]


@dataclass
class SweepOutcome:
    """A finished (or interrupted) sweep.

    Attributes:
        sweep_dir: the sweep's folder.
        records: every trial, as plain records.
        report: the written report (front, hypervolume, file paths).
    """

    sweep_dir: Path
    records: list[TrialResult]
    report: Report


def _attach_run_ids(records, tracker) -> None:
    by_trial = tracker.child_runs()
    for record in records:
        record.mlflow_run_id = by_trial.get(record.trial_id)


def finish_sweep(sweep_dir: str | Path, *, tracker=None, interrupted: bool = False, end_parent: bool = True,
                 echo: Callable[[str], Any] = print):
    """Read every trial back, write trials.csv / pareto.csv / pareto.png, log them, print the front.

    Args:
        sweep_dir: the sweep's folder.
        tracker: the sweep's :class:`~raykd.tracking.mlflow.SweepTracker`, or None to skip MLflow.
        interrupted: the sweep stopped early (the parent run is then marked FAILED).
        end_parent: close the parent run.
        echo: where the summary line goes.

    Returns:
        :class:`~raykd.sweep.run.SweepOutcome`.
    """
    sweep_dir = Path(sweep_dir)
    meta = read_sweep_meta(sweep_dir)
    metric_name = meta["metric_name"]
    records = read_trials(sweep_dir / "tune", metric_name)
    teacher = TeacherSummary(**meta["teacher"])
    parent = meta.get("mlflow_parent_run_id")
    if tracker is not None and parent:
        tracker.parent_run_id = parent
        _attach_run_ids(records, tracker)
    report = write_report(records, sweep_dir, teacher=teacher, task_name=meta["task"], metric_name=metric_name,
                          ref_metric=meta["baseline"].get(metric_name, 0.0))
    if meta.get("tasks"):  # a multi-task sweep: a front per task and the combined figure
        from raykd.sweep.multitask import finish_task_fronts

        finish_task_fronts(records, sweep_dir, meta, tracker, parent)
    finished = sum(r.status == "TERMINATED" for r in records)
    failed = sum(r.status == "ERROR" for r in records)
    if tracker is not None and parent:
        for path in (report.trials_csv, report.pareto_csv, report.pareto_png, report.pareto_html):
            if path is not None and Path(path).is_file():
                tracker.log_artifact(parent, path)
        tracker.log_metrics(parent, {"hypervolume": report.hypervolume, "trials_finished": finished,
                                     "trials_failed": failed, "front_size": len(report.front)})
        if end_parent:
            tracker.end_run(parent, failed=interrupted, reason="sweep interrupted" if interrupted else None)
    _print_front(report, teacher, metric_name)
    echo(f"{finished} trials finished, {failed} failed, {len(report.front)} on the Pareto front; "
         f"hypervolume {report.hypervolume:.4f}; files in {sweep_dir}")
    return SweepOutcome(sweep_dir=sweep_dir, records=records, report=report)


def _print_front(report, teacher, metric_name: str) -> None:
    from rich.console import Console

    Console(width=160).print(front_table(report, teacher, metric_name))
