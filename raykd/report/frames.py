"""A sweep's trials as one table: the rows of trials.csv and which of them are on the Pareto front.

Every report output (trials.csv, pareto.csv, pareto.png, pareto.html, the per-task fronts) is drawn
from :func:`trials_frame`, so they agree on which trials finished and which are on the front.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from raykd.records import TrialResult
from raykd.report.pareto import pareto_mask

__all__ = ["trials_frame", "pareto_frame", "front_of", "eligible", "FINISHED", "FAILED"]

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




def _on_front(frame: pd.DataFrame) -> np.ndarray:
    rows = eligible(frame).to_numpy(dtype=bool)
    mask = np.zeros(len(frame), dtype=bool)
    mask[rows] = pareto_mask(
        frame["metric"].to_numpy(dtype=float)[rows],
        frame["student_params"].to_numpy(dtype=float, na_value=np.nan)[rows],
    )
    return mask


def front_of(trials: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`trials_frame` on the front."""
    return trials[trials["on_front"]].reset_index(drop=True)


def pareto_frame(records: list[TrialResult]) -> pd.DataFrame:
    """The non-dominated finished trials, fewest student parameters first.

    Only ``TERMINATED`` trials with a metric and a parameter count compete; the columns are
    those of :func:`trials_frame`.
    """
    return front_of(trials_frame(records))
