"""The Pareto plot: every finished trial, the front, the teacher; matplotlib's Agg canvas, no pyplot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from raykd.records import TeacherSummary, TrialResult
from raykd.report.frames import FAILED, FINISHED, eligible, trials_frame

__all__ = ["plot_front", "MARKERS", "draw_teacher", "format_axes"]


def plot_front(
    records: list[TrialResult],
    path: str | Path,
    *,
    teacher: TeacherSummary | None,
    task_name: str,
    metric_name: str,
) -> Path:
    """Draw the metric against student parameters and save it as an image.

    x: student parameters in millions, log scale; y: the metric. Every finished trial is a
    point coloured by method (by student family when the sweep has one method), its marker
    the student family; the front is a step line through its (ringed) points;
    the teacher is a star labelled with its value. Failed and unfinished trials are not drawn;
    the subtitle counts them.

    Args:
        records: every trial of the sweep.
        path: image file to write (format from the suffix, e.g. ``.png``); parents created.
        teacher: the teacher, or None if unknown.
        task_name: task name for the title.
        metric_name: the metric on the y axis.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    trials = trials_frame(records)
    done = trials[eligible(trials)]
    fig = Figure(figsize=(8, 5.5), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw_trials(ax, done)
    draw_teacher(ax, teacher)
    format_axes(ax, metric_name)
    if done.empty:
        # below the middle, where a lone teacher star would not hide it
        ax.text(0.5, 0.3, "no finished trials yet", transform=ax.transAxes,
                ha="center", va="center", fontsize=14, color="dimgray")
    if not ax.has_data():
        ax.tick_params(which="both", bottom=False, left=False,
                       labelbottom=False, labelleft=False)
    fig.suptitle(f"{task_name} distillation: {metric_name} vs parameters", fontweight="bold")
    ax.set_title(_subtitle(trials, done), fontsize=9, color="dimgray")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


MARKERS = ("o", "s", "^", "D", "v")


def _draw_trials(ax: Any, done: pd.DataFrame) -> None:
    families = done["student"].astype(object).where(done["student"].notna(), "unknown")
    methods = done["method"].astype(object).where(done["method"].notna(), "unknown")
    family_names, method_names = sorted(set(families)), sorted(set(methods))
    for method, family in sorted(set(zip(methods, families))):
        group = done[(methods == method) & (families == family)]
        if len(method_names) > 1:  # colour by method, marker by student family
            colour = f"C{method_names.index(method)}"
            label = f"{method} / {family}" if len(family_names) > 1 else str(method)
        else:
            colour, label = f"C{family_names.index(family)}", str(family)
        ax.scatter(group["student_params"].astype(float) / 1e6, group["metric"], s=30, color=colour, alpha=0.8,
                   marker=MARKERS[family_names.index(family) % len(MARKERS)], label=label, zorder=3)
    front = done[done["on_front"]]
    if not front.empty:
        x = front["student_params"].astype(float) / 1e6
        ax.step(x, front["metric"], where="post", color="black", linewidth=1.2,
                label="Pareto front", zorder=2)
        ax.scatter(x, front["metric"], s=90, facecolors="none", edgecolors="black",
                   linewidths=1.2, zorder=4)


def draw_teacher(ax: Any, teacher: TeacherSummary | None) -> None:
    if teacher is None:
        return
    x = teacher.params / 1e6
    if teacher.metric is None:
        ax.axvline(x, color="gray", linestyle="--", label=f"teacher ({x:.1f}M)")
        return
    ax.axhline(teacher.metric, color="gray", linestyle=":", linewidth=1, zorder=1)
    ax.scatter([x], [teacher.metric], marker="*", s=260, color="gold", edgecolors="black",
               label="teacher", zorder=5)
    ax.annotate(f"teacher {teacher.metric:.4f}\n{x:.1f}M params", (x, teacher.metric),
                xytext=(-10, -10), textcoords="offset points", ha="right", va="top",
                fontsize=8)


def format_axes(ax: Any, metric_name: str) -> None:
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}M"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.margins(x=0.08, y=0.08)
    ax.set_xlabel("student parameters (log scale)")
    ax.set_ylabel(metric_name)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=8)


def _subtitle(trials: pd.DataFrame, done: pd.DataFrame) -> str:
    status = trials["status"]
    parts = [f"{len(done)} finished trials, {int(done['on_front'].sum())} on the Pareto front"]
    n_failed = int((status == FAILED).sum())
    n_open = int((~status.isin([FINISHED, FAILED])).sum())
    n_unmeasured = int((status == FINISHED).sum()) - len(done)
    if n_failed:
        parts.append(f"{n_failed} failed (not shown)")
    if n_open:
        parts.append(f"{n_open} running or pending (not shown)")
    if n_unmeasured:
        parts.append(f"{n_unmeasured} finished without a metric (not shown)")
    return "; ".join(parts)
