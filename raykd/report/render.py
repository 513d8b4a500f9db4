"""A sweep's report: the trials and front as tables and CSV files, and the hypervolume.

The only inputs are plain records (:class:`~raykd.records.TrialResult`,
:class:`~raykd.records.TeacherSummary`), so a report works on a live sweep or on one read back
from disk. rich and matplotlib are imported inside the functions that draw with them, and the
plot renders on matplotlib's Agg canvas without touching pyplot or the global backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raykd.records import TeacherSummary, TrialResult
from raykd.report.frames import FAILED, FINISHED, eligible, front_of, pareto_frame, trials_frame
from raykd.report.pareto import scaled_hypervolume

# the table's names stay importable from here, where the report is written
__all__ = ["Report", "trials_frame", "pareto_frame", "write_report", "eligible", "FINISHED", "FAILED"]

@dataclass
class Report:
    """What :func:`write_report` wrote and computed.

    Attributes:
        trials_csv: one row per trial (see :func:`trials_frame`).
        pareto_csv: the non-dominated finished trials, fewest parameters first.
        pareto_png: the plot, or None when plotting was switched off.
        pareto_html: the interactive plot (plotly, hover shows each trial), or None when
            plotting was switched off.
        hypervolume: area dominated by the front, in metric x (fraction of the teacher's
            parameters) units.
        front: the rows of ``pareto_csv``.
        trials: the rows of ``trials_csv``.
    """

    trials_csv: Path
    pareto_csv: Path
    pareto_png: Path | None
    pareto_html: Path | None
    hypervolume: float
    front: pd.DataFrame
    trials: pd.DataFrame


def write_report(
    records: list[TrialResult],
    out_dir: str | Path,
    *,
    teacher: TeacherSummary | None,
    task_name: str,
    metric_name: str,
    ref_metric: float = 0.0,
    plot: bool = True,
) -> Report:
    """Write ``trials.csv``, ``pareto.csv``, ``pareto.png`` and ``pareto.html`` to ``out_dir``.

    Works with no finished trial (an empty front, hypervolume 0.0 and a plot that says so)
    and with failed or running trials mixed in.

    Args:
        records: every trial of the sweep, finished or not.
        out_dir: folder to write to; created if missing.
        teacher: the teacher, or None if unknown.
        task_name: task name for the plot title (``sst2``).
        metric_name: the task's primary metric (``accuracy``).
        ref_metric: worst metric counted by the hypervolume; pass the majority-class baseline.
        plot: draw ``pareto.png`` and the interactive ``pareto.html``
            (:func:`~raykd.report.interactive.write_front_html`).

    Returns:
        The paths written, the hypervolume and both tables. The hypervolume measures
        parameters as a fraction of the teacher's (of the largest student's when ``teacher``
        is None), so its reference point is ``(ref_metric, 1.0)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_frame(records)
    front = front_of(trials)
    trials.to_csv(out / "trials.csv", index=False)
    front.to_csv(out / "pareto.csv", index=False)
    png = page = None
    if plot:
        from raykd.report.interactive import write_front_html
        from raykd.report.plot import plot_front

        png = plot_front(
            records, out / "pareto.png", teacher=teacher, task_name=task_name,
            metric_name=metric_name,
        )
        page = write_front_html(records, out / "pareto.html", teacher=teacher, task_name=task_name,
                                metric_name=metric_name)
    return Report(
        trials_csv=out / "trials.csv",
        pareto_csv=out / "pareto.csv",
        pareto_png=png,
        pareto_html=page,
        hypervolume=_front_hypervolume(front, trials, teacher, ref_metric),
        front=front,
        trials=trials,
    )


def _front_hypervolume(
    front: pd.DataFrame, trials: pd.DataFrame, teacher: TeacherSummary | None, ref_metric: float
) -> float:
    scale = teacher.params if teacher is not None else trials["student_params"].max()
    return scaled_hypervolume(front["metric"].to_numpy(dtype=float), front["student_params"].to_numpy(dtype=float),
                              None if pd.isna(scale) else float(scale), ref_metric)


# ----------------------------------------------------------------------------- front tables
