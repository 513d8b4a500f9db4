"""The Pareto front as a rich table (printed at the end of a sweep) and as GitHub markdown."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from raykd.records import TeacherSummary
from raykd.report.frames import FINISHED
from raykd.report.render import Report

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["front_table", "markdown_front", "markdown_row", "format_text", "format_number", "format_millions"]

# Short names for the settings column of the front table; unknown keys keep their last part.
_ABBREV = {
    "augment": "aug",
    "temperature": "T",
    "alpha": "a",
    "beta": "b",
    "kd_loss": "loss",
    "loss": "loss",
    "lr": "lr",
    "learning_rate": "lr",
    "epochs": "ep",
    "num_epochs": "ep",
    "batch_size": "bs",
    "weight_decay": "wd",
    "warmup_ratio": "wu",
    "dropout": "drop",
    "hidden_size": "h",
    "hidden_dim": "h",
    "num_layers": "L",
    "layers": "L",
    "num_heads": "heads",
    "intermediate_size": "ffn",
    "embedding_dim": "emb",
}
_MAX_SETTINGS = 8


def front_table(report: Report, teacher: TeacherSummary | None, metric_name: str) -> Table:
    """The Pareto front as a rich Table, one row per front trial.

    Columns: trial, method, student, the metric (and % of the teacher's when known),
    parameters and parameters without embeddings (millions), compression (x), latency (ms)
    and the settings that differ between front members, abbreviated (``T=4 a=0.3 kl``).
    """
    from rich.table import Table

    title, headers, rows, numeric = _front_rows(report, teacher, metric_name)
    table = Table(title=title)
    for header, is_number in zip(headers, numeric):
        table.add_column(header, justify="right" if is_number else "left", overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def markdown_front(report: Report, teacher: TeacherSummary | None, metric_name: str) -> str:
    """The table of :func:`front_table` as GitHub markdown: a bold title, then the table."""
    title, headers, rows, numeric = _front_rows(report, teacher, metric_name)
    lines = [
        f"**{title}**",
        "",
        markdown_row(headers),
        "|" + "|".join("---:" if is_number else "---" for is_number in numeric) + "|",
        *(markdown_row(row) for row in rows),
    ]
    return "\n".join(lines) + "\n"


def markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _front_rows(
    report: Report, teacher: TeacherSummary | None, metric_name: str
) -> tuple[str, list[str], list[list[str]], list[bool]]:
    """Title, headers, formatted rows and which columns are numbers, shared by both tables."""
    front = report.front
    n_finished = int((report.trials["status"] == FINISHED).sum())
    title = f"Pareto front: {len(front)} of {n_finished} finished trials"
    t_metric = teacher.metric if teacher is not None else None
    if teacher is not None:
        title += (
            f"; teacher {metric_name} {format_number(t_metric, '.4f')}, "
            f"{teacher.params / 1e6:.2f}M params"
        )
    percent = t_metric is not None and t_metric != 0
    headers = ["trial", "method", "student", metric_name]
    headers += ["% of teacher"] if percent else []
    headers += ["params (M)", "params w/o emb. (M)", "compression", "latency (ms)", "settings"]
    numeric = [False] * 3 + [True] * (len(headers) - 4) + [False]
    summaries = _settings_summaries(front, report.trials)
    rows = []
    for rec, summary in zip(front.to_dict("records"), summaries):
        row = [str(rec["trial_id"]), format_text(rec["method"]), format_text(rec["student"])]
        row.append(format_number(rec["metric"], ".4f"))
        if percent:
            row.append(f"{100 * rec['metric'] / t_metric:.1f}%")
        row += [
            format_number(format_millions(rec["student_params"]), ".2f"),
            format_number(format_millions(rec["student_params_non_embedding"]), ".2f"),
            format_number(_compression(rec, teacher), ".1f", suffix="x"),
            format_number(rec["latency_ms"], ".2f"),
            summary,
        ]
        rows.append(row)
    return title, headers, rows, numeric


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def format_text(value: Any) -> str:
    return "-" if _missing(value) else str(value)


def format_number(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if _missing(value) else f"{value:{spec}}{suffix}"


def format_millions(value: Any) -> float | None:
    return None if _missing(value) else value / 1e6


def _compression(rec: dict[str, Any], teacher: TeacherSummary | None) -> float | None:
    if not _missing(rec["compression_ratio"]):
        return rec["compression_ratio"]
    if teacher is None or _missing(rec["student_params"]) or not rec["student_params"]:
        return None
    return teacher.params / rec["student_params"]


def _settings_summaries(front: pd.DataFrame, trials: pd.DataFrame) -> list[str]:
    """Per front row, the settings that differ between front members, abbreviated.

    With fewer than two front members nothing differs between them, so the settings that
    vary over the whole sweep are shown instead. Well-known settings come first, in the order
    of ``_ABBREV`` (temperature, alpha, ..., lr, epochs); at most ``_MAX_SETTINGS`` are shown.
    """
    pool = front if len(front) > 1 else trials
    keys = [c for c in front.columns if c.startswith("setting/")]
    varying = [k for k in keys if pool[k].astype(str).nunique(dropna=False) > 1]
    rank = {leaf: i for i, leaf in enumerate(_ABBREV)}
    varying.sort(key=lambda k: rank.get(_leaf(k), len(rank)))  # stable: others keep key order
    varying = varying[:_MAX_SETTINGS]
    summaries = []
    for rec in front.to_dict("records"):
        skip = {rec["method"], rec["student"]}  # already columns of the table
        parts = [_setting(k, rec[k]) for k in varying if not _missing(rec[k])]
        summaries.append(" ".join(p for p in parts if p not in skip))
    return summaries


def _leaf(key: str) -> str:
    return key.removeprefix("setting/").rsplit("/", 1)[-1]


def _setting(key: str, value: Any) -> str:
    name = _ABBREV.get(_leaf(key), _leaf(key))
    if isinstance(value, (bool, np.bool_)):
        return name if value else f"no-{name}"
    if isinstance(value, str):  # categorical choices read best bare ("kl", "mse"); "none" needs its name
        return f"{name}={value}" if value in ("none", "tang") else value
    if isinstance(value, (int, np.integer)):
        return f"{name}={int(value)}"
    if isinstance(value, (float, np.floating)):
        return f"{name}={_short_number(float(value))}"
    return f"{name}={value}"


def _short_number(value: float) -> str:
    """``1e-3``, ``3.5e-4``, ``4.2``, ``0.3``, ``2``: short but exact enough to read."""
    if value != 0 and (abs(value) < 1e-2 or abs(value) >= 1e4):
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:.3g}"
