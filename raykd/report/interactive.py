"""The Pareto front as an interactive page (``pareto.html``): the static plot's points, with hover.

The same inputs and the same front as :func:`~raykd.report.plot.plot_front` (both read
:func:`~raykd.report.frames.trials_frame`), drawn with plotly. The page embeds plotly.js, so it
opens offline and inside MLflow's artifact view. Every point carries its trial id as the first
entry of its ``customdata``; the graph is the ``<div id="pareto-front">`` of the page.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from raykd.records import TeacherSummary, TrialResult
from raykd.report.frames import FAILED, FINISHED, eligible, trials_frame

__all__ = ["write_front_html", "DIV_ID", "FRONT_TRACE", "EMPTY_TEXT"]

DIV_ID = "pareto-front"
FRONT_TRACE = "Pareto front"
EMPTY_TEXT = "no finished trials yet"
_HOVER_WIDTH = 90  # characters per line of settings in a point's hover box

_SYMBOLS = ("circle", "square", "triangle-up", "diamond", "triangle-down")
# matplotlib's C0-C7, so pareto.png and pareto.html colour a sweep alike
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def write_front_html(
    records: list[TrialResult],
    path: str | Path,
    *,
    teacher: TeacherSummary | None,
    task_name: str,
    metric_name: str,
) -> Path:
    """Write the metric against student parameters as a self-contained interactive HTML page.

    x: student parameters in millions, log scale; y: the metric. One point per finished trial
    (status ``TERMINATED`` with a metric and a size), coloured by method (by student family
    when the sweep has one method), its marker symbol the student family; the Pareto front is a
    step line through ringed points; the teacher is a gold star labelled with its value (a
    dashed vertical line at its size when its metric is unknown). Hovering a point shows its
    trial id, method, student, metric, parameters, compression ratio and settings. A sweep with
    no finished trial still gets a page, which says so. plotly.js (about 4.8 MB) is embedded.

    Args:
        records: every trial of the sweep, finished or not.
        path: the ``.html`` file to write; parents created.
        teacher: the teacher, or None if unknown.
        task_name: task name for the title.
        metric_name: the metric on the y axis.

    Returns:
        ``path`` as a Path.

    Raises:
        ImportError: plotly is not installed.
        OSError: the file cannot be written.
    """
    import plotly.graph_objects as go

    trials = trials_frame(records)
    done = trials[eligible(trials)]
    settings = _settings_texts(records)
    fig = go.Figure()
    for trace in _trial_traces(done, settings, teacher, metric_name):
        fig.add_trace(trace)
    _add_teacher(fig, teacher)
    if done.empty:
        fig.add_annotation(text=EMPTY_TEXT, xref="paper", yref="paper", x=0.5, y=0.3, showarrow=False,
                           font={"size": 18, "color": "dimgray"})
    title = f"<b>{html.escape(task_name)} distillation: {html.escape(metric_name)} vs parameters</b>"
    fig.update_layout(
        template="plotly_white", hovermode="closest", legend={"x": 0.99, "xanchor": "right", "y": 0.01},
        title={"text": f"{title}<br><sup>{_subtitle(trials, done)}</sup>"},
    )
    ticks = _log_ticks([*_millions(done), *([teacher.params / 1e6] if teacher is not None else [])])
    fig.update_xaxes(type="log", title="student parameters (log scale)", tickvals=ticks,
                     ticktext=[f"{v:g}M" for v in ticks])
    fig.update_yaxes(title=metric_name)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(out, include_plotlyjs=True, full_html=True, div_id=DIV_ID)
    return out


def _trial_traces(done: pd.DataFrame, settings: dict[str, str], teacher: TeacherSummary | None,
                  metric_name: str) -> list[Any]:
    import plotly.graph_objects as go

    if done.empty:
        return []
    families = done["student"].astype(object).where(done["student"].notna(), "unknown").astype(str)
    methods = done["method"].astype(object).where(done["method"].notna(), "unknown").astype(str)
    family_names, method_names = sorted(set(families)), sorted(set(methods))
    hover = _hover_template(metric_name)
    traces = []
    for method, family in sorted(set(zip(methods, families))):
        group = done[(methods == method) & (families == family)]
        by_method = len(method_names) > 1  # as the static plot: colour by method, else by family
        colour = _COLOURS[(method_names.index(method) if by_method else family_names.index(family)) % len(_COLOURS)]
        label = f"{method} / {family}" if by_method and len(family_names) > 1 else (method if by_method else family)
        traces.append(go.Scatter(
            x=_millions(group), y=group["metric"].astype(float).tolist(), mode="markers", name=label,
            marker={"color": colour, "size": 10, "opacity": 0.85, "line": {"width": 0.5, "color": "white"},
                    "symbol": _SYMBOLS[family_names.index(family) % len(_SYMBOLS)]},
            customdata=_customdata(group, settings, teacher), hovertemplate=hover,
        ))
    front = done[done["on_front"]]
    traces.append(go.Scatter(
        x=_millions(front), y=front["metric"].astype(float).tolist(), mode="lines+markers", name=FRONT_TRACE,
        line={"shape": "hv", "color": "black", "width": 1.5},
        marker={"symbol": "circle-open", "size": 18, "color": "black", "line": {"width": 2}},
        customdata=_customdata(front, settings, teacher), hovertemplate=hover,
    ))
    return traces


def _hover_template(metric_name: str) -> str:
    return ("<b>trial %{customdata[0]}</b><br>method: %{customdata[1]}<br>student: %{customdata[2]}<br>"
            f"{html.escape(metric_name)}: %{{y:.4f}}<br>"
            "parameters: %{x:.3f}M (%{customdata[3]})<br>%{customdata[5]}%{customdata[4]}<extra></extra>")


def _log_ticks(values: list[float]) -> list[float]:
    """1, 2 and 5 x 10^k from just below the smallest value to just above the largest (millions)."""
    values = [v for v in values if v > 0]
    if not values:
        return []
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    ticks = [float(f"{m * 10.0 ** k:.12g}") for k in range(low, high + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if min(values) / 2 <= t <= max(values) * 2]
    return inside or ticks


def _millions(frame: pd.DataFrame) -> list[float]:
    return (frame["student_params"].astype(float) / 1e6).tolist()


def _customdata(frame: pd.DataFrame, settings: dict[str, str], teacher: TeacherSummary | None) -> list[list[str]]:
    """Per row: trial id, method, student, compression, settings text, a front line or ''."""
    rows = []
    for rec in frame.to_dict("records"):
        ratio = rec["compression_ratio"]
        if pd.isna(ratio) and teacher is not None and rec["student_params"]:
            ratio = teacher.params / rec["student_params"]
        compression = "compression unknown" if pd.isna(ratio) else f"compression {ratio:.1f}x"
        rows.append([str(rec["trial_id"]), str(rec["method"]), str(rec["student"]), compression,
                     settings.get(rec["trial_id"], ""), "<b>on the Pareto front</b><br>" if rec["on_front"] else ""])
    return rows


def _settings_texts(records: list[TrialResult]) -> dict[str, str]:
    """Trial id -> its settings for the hover, ``key=value`` a few to a line: first, in bold, the ones
    that differ between the sweep's trials that have them (what the search chose), then the rest."""
    values: dict[str, set[str]] = {}
    for record in records:
        for key, value in record.settings.items():
            values.setdefault(key, set()).add(_value(value))
    texts = {}
    for record in records:
        items = sorted((k, _value(v)) for k, v in record.settings.items() if k not in ("method", "student"))
        chosen = [f"{html.escape(k)}={html.escape(v)}" for k, v in items if len(values[k]) > 1]
        rest = [f"{html.escape(k)}={html.escape(v)}" for k, v in items if len(values[k]) == 1]
        lines = [f"<b>{line}</b>" for line in _wrap(chosen)] + _wrap(rest)
        texts[record.trial_id] = "<br>".join(lines)
    return texts


def _wrap(parts: list[str], width: int = _HOVER_WIDTH) -> list[str]:
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += f", {part}"
        else:
            lines.append(part)
    return lines


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _add_teacher(fig: Any, teacher: TeacherSummary | None) -> None:
    if teacher is None:
        return
    import plotly.graph_objects as go

    x = teacher.params / 1e6
    if teacher.metric is None:
        fig.add_vline(x=x, line={"color": "gray", "dash": "dash"},
                      annotation_text=f"teacher ({x:.1f}M, {html.escape(teacher.path)})")
        return
    fig.add_hline(y=teacher.metric, line={"color": "gray", "dash": "dot", "width": 1})
    fig.add_trace(go.Scatter(
        x=[x], y=[teacher.metric], mode="markers+text", name="teacher",
        marker={"symbol": "star", "size": 22, "color": "gold", "line": {"color": "black", "width": 1}},
        text=[f"teacher {teacher.metric:.4f}"], textposition="bottom left",
        hovertemplate=f"<b>teacher</b> {html.escape(teacher.path)}<br>%{{y:.4f}}<br>{x:.2f}M parameters<extra></extra>",
    ))


def _subtitle(trials: pd.DataFrame, done: pd.DataFrame) -> str:
    status = trials["status"]
    parts = [f"{len(done)} finished trials, {int(done['on_front'].sum())} on the Pareto front"]
    hidden = {
        "failed": int((status == FAILED).sum()),
        "running or pending": int((~status.isin([FINISHED, FAILED])).sum()),
        "finished without a metric": int((status == FINISHED).sum()) - len(done),
    }
    parts += [f"{n} {what} (not shown)" for what, n in hidden.items() if n]
    return "; ".join(parts)
