"""A sweep's report: the trials and front as tables and CSV files, and the hypervolume.

The only inputs are plain records (:class:`~raykd.records.TrialResult`,
:class:`~raykd.records.TeacherSummary`), so a report works on a live sweep or on one read back
from disk. rich and matplotlib are imported inside the functions that draw with them, and the
plot renders on matplotlib's Agg canvas without touching pyplot or the global backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raykd.records import TeacherSummary, TrialResult
from raykd.report.pareto import pareto_mask, scaled_hypervolume

__all__ = ["Report", "trials_frame", "pareto_frame", "write_report", "eligible", "FINISHED", "FAILED"]

FINISHED = "TERMINATED"
FAILED = "ERROR"

_HEAD = ["trial_id", "status", "method", "student", "metric_name", "metric"]
_TAIL = [
    "student_params",
    "student_params_non_embedding",
    "compression_ratio",
    "latency_ms",
    "epochs_done",
    "best_epoch",
    "transfer_examples",
    "checkpoint_dir",
    "error",
    "mlflow_run_id",
]
_INT_COLUMNS = ["student_params", "student_params_non_embedding", "epochs_done", "best_epoch", "transfer_examples"]
_FLOAT_COLUMNS = ["metric", "compression_ratio", "latency_ms"]

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


def trials_frame(records: list[TrialResult]) -> pd.DataFrame:
    """One row per trial, fewest student parameters first (unknown sizes last).

    Columns: ``trial_id, status, method, student, metric_name, metric``, each dev metric as
    ``dev_<name>``, ``student_params, student_params_non_embedding, compression_ratio,
    latency_ms, epochs_done, best_epoch, transfer_examples, checkpoint_dir, error, mlflow_run_id, on_front`` (bool: a
    finished trial on the Pareto front), then each setting as ``setting/<key>``.
    """
    dev_names = sorted({name for r in records for name in r.metrics})
    setting_keys = sorted({key for r in records for key in r.settings})
    columns = [
        *_HEAD,
        *(f"dev_{n}" for n in dev_names),
        *_TAIL,
        "on_front",
        *(f"setting/{k}" for k in setting_keys),
    ]
    frame = pd.DataFrame([_row(r) for r in records], columns=columns)
    for col in _INT_COLUMNS:
        frame[col] = frame[col].astype("Int64")
    for col in [*_FLOAT_COLUMNS, *(f"dev_{n}" for n in dev_names)]:
        frame[col] = frame[col].astype(float)
    for key in setting_keys:  # integer settings stay integers (epochs=2, not 2.0) despite gaps
        values = [r.settings[key] for r in records if key in r.settings]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            frame[f"setting/{key}"] = frame[f"setting/{key}"].astype("Int64")
    frame["on_front"] = _on_front(frame)
    frame = frame.sort_values(["student_params", "trial_id"], na_position="last", kind="stable")
    return frame.reset_index(drop=True)


def _row(r: TrialResult) -> dict[str, Any]:
    row = {col: getattr(r, col) for col in [*_HEAD, *_TAIL]}
    row.update({f"dev_{name}": value for name, value in r.metrics.items()})
    row.update({f"setting/{key}": value for key, value in r.settings.items()})
    return row


def eligible(frame: pd.DataFrame) -> pd.Series:
    """Which rows of :func:`trials_frame` are finished trials with a metric and a size: the
    trials the plots draw and the ones that can be on the front."""
    return (
        (frame["status"] == FINISHED) & frame["metric"].notna() & frame["student_params"].notna()
    )


_eligible = eligible  # the name raykd/report/plot.py imports


def _on_front(frame: pd.DataFrame) -> np.ndarray:
    rows = eligible(frame).to_numpy(dtype=bool)
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows] = pareto_mask(
        frame["metric"].to_numpy(dtype=float)[rows],
        frame["student_params"].to_numpy(dtype=float, na_value=np.nan)[rows],
    )
    return mask


def _front(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[trials["on_front"]].reset_index(drop=True)


def pareto_frame(records: list[TrialResult]) -> pd.DataFrame:
    """The non-dominated finished trials, fewest student parameters first.

    Only ``TERMINATED`` trials with a metric and a parameter count compete; the columns are
    those of :func:`trials_frame`.
    """
    return _front(trials_frame(records))


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
    front = _front(trials)
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
