"""A sweep's stages, estimated before it started against what they took: a table, markdown and ``stages.csv``.

The input is the ``stages`` mapping of ``sweep.json`` (plain numbers, written by
:class:`raykd.sweep.estimate.StageClock`): ``{stage: {"estimate": s, "actual": s, "status": ...}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from raykd.report.tables import markdown_row

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["stage_times_frame", "stage_times_table", "markdown_stage_times", "write_stage_times"]

_LABELS = {"teacher": "teacher", "soft_targets": "soft targets", "transfer_sets": "transfer sets", "trials": "trials"}
_HEADERS = ["stage", "estimate", "actual", "actual / estimate"]


def stage_times_frame(stages: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per stage and a ``total`` row: ``stage, estimate_s, actual_s, ratio, status``.

    ``ratio`` is actual / estimate (NaN when either is unknown or the estimate is 0).
    """
    rows = []
    for name, entry in stages.items():
        rows.append({"stage": _LABELS.get(name, name), "estimate_s": entry.get("estimate"),
                     "actual_s": entry.get("actual"), "status": entry.get("status")})
    frame = pd.DataFrame(rows, columns=["stage", "estimate_s", "actual_s", "status"])
    known = frame.dropna(subset=["estimate_s", "actual_s"])
    total = {"stage": "total", "estimate_s": known["estimate_s"].sum() if len(known) else None,
             "actual_s": known["actual_s"].sum() if len(known) else None, "status": None}
    frame = pd.concat([frame, pd.DataFrame([total])], ignore_index=True)
    est, act = frame["estimate_s"].astype(float), frame["actual_s"].astype(float)
    frame["ratio"] = (act / est).where(est > 0)
    return frame[["stage", "estimate_s", "actual_s", "ratio", "status"]]


def _cells(row) -> list[str]:
    def seconds(value) -> str:
        if pd.isna(value):
            return "-"
        if value < 60:
            return f"{value:.0f} s"
        return f"{value / 60:.1f} min" if value < 3600 else f"{value / 3600:.1f} h"

    estimate = seconds(row.estimate_s) + (f" ({row.status})" if row.status in ("cached", "none") else "")
    ratio = "-" if pd.isna(row.ratio) else f"{row.ratio:.2f}"
    return [row.stage, estimate, seconds(row.actual_s), ratio]


def stage_times_table(stages: dict[str, dict[str, Any]]) -> Table:
    """The stages as a rich Table: stage, estimate, actual, actual / estimate."""
    from rich.table import Table

    table = Table(title="stages: estimate before the sweep vs actual")
    for header in _HEADERS:
        table.add_column(header, justify="left" if header == "stage" else "right")
    for row in stage_times_frame(stages).itertuples():
        table.add_row(*_cells(row))
    return table


def markdown_stage_times(stages: dict[str, dict[str, Any]]) -> str:
    """The same table as GitHub markdown."""
    lines = [markdown_row(_HEADERS), "|---|---:|---:|---:|"]
    lines += [markdown_row(_cells(row)) for row in stage_times_frame(stages).itertuples()]
    return "\n".join(lines) + "\n"


def write_stage_times(stages: dict[str, dict[str, Any]], out_dir: str | Path) -> Path:
    """Write ``stages.csv`` (the rows of :func:`stage_times_frame`) to ``out_dir``; returns its path."""
    path = Path(out_dir) / "stages.csv"
    stage_times_frame(stages).to_csv(path, index=False)
    return path
