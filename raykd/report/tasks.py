"""Per-task Pareto fronts of a multi-task sweep, next to the macro front, as CSV, tables and a plot.

A multi-task sweep distils several tasks at once. Each finished trial's ``metric`` is the macro
average (mean over tasks of each task's primary metric) and ``student_params`` the parameters
needed to serve every task; :func:`~raykd.report.render.write_report` draws that macro front.
Here every task also gets its own front, read from the trial's ``metrics``:

* ``"<task>/metric"``: the task's primary dev metric, in the metric's own unit (accuracy, F1 and
  Matthews correlation as fractions, Pearson correlation in ``[-1, 1]``);
* ``"<task>/params"``: parameters of the model that serves the task: for a multi-task student the
  shared encoder plus that task's head, for a single-task method that task's own student;
* ``"<task>/metric_before_finetune"`` (optional): the task's metric before per-task fine-tuning.

A trial joins a task's front only when it finished (``TERMINATED``) and has a finite metric and
parameter count for that task. Like the rest of the report, only plain records come in; rich and
matplotlib are imported inside the functions that draw, and the plot uses the Agg canvas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from raykd.records import TeacherSummary, TrialResult
from raykd.report.pareto import pareto_mask, scaled_hypervolume
from raykd.report.frames import FAILED, FINISHED, eligible, trials_frame
from raykd.report.tables import markdown_row, format_millions, format_number, format_text

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "TaskInfo",
    "TaskFronts",
    "write_task_fronts",
    "task_fronts_table",
    "markdown_task_fronts",
    "plot_task_fronts",
    "MACRO",
]

MACRO = "macro"
MULTITASK = "multitask"


@dataclass(frozen=True)
class TaskInfo:
    """One task of a multi-task sweep, as its front needs it.

    Attributes:
        name: task name (``sst2``); the prefix of the trials' ``"<name>/metric"`` keys.
        metric_name: the task's primary metric (``accuracy``, ``matthews``, ``f1``, ``pearson``).
        teacher_metric: the task teacher's dev value of that metric, or None if unknown.
        teacher_params: the task teacher's total parameters, or None if unknown.
        baseline: the metric's floor (majority class, or the mean for regression): the
            hypervolume's reference metric.
    """

    name: str
    metric_name: str
    teacher_metric: float | None
    teacher_params: int | None
    baseline: float = 0.0


@dataclass
class TaskFronts:
    """What :func:`write_task_fronts` wrote and computed.

    Attributes:
        fronts: task -> its front, fewest parameters first. Columns ``trial_id, method,
            student, metric, params`` (the task's ``"<task>/params"``), ``compression_ratio``
            (task teacher parameters / ``params``), ``metric_before_finetune``, ``macro``,
            ``student_params`` (all tasks), then each setting as ``setting/<key>``.
        hypervolumes: task -> area its front dominates, in metric x (fraction of that task's
            teacher parameters, or of its largest student's when unknown) units, above
            ``TaskInfo.baseline``.
        csvs: task -> ``<sweep_dir>/fronts/<task>.csv``.
        macro_csv: ``<sweep_dir>/fronts/macro.csv``: the macro front, the same trials as
            ``pareto.csv``, with ``metric`` the macro average, ``params`` the student's total
            parameters and each task's ``<task>`` metric and ``<task>_params``.
        figure: ``<sweep_dir>/pareto_tasks.png``, or None when plotting was switched off.
        table_csv: ``<sweep_dir>/task_metrics.csv``: the rows of ``table``.
        macro_front: the rows of ``macro_csv``.
        macro_hypervolume: the macro front's hypervolume, parameters as a fraction of
            ``teacher_params_total`` (of the largest student's when unknown), above the mean
            of the tasks' baselines.
        table: one row per finished trial: ``trial_id, method, student, student_params,
            macro``, then per task ``<task>`` (metric) and ``<task>_params``; fewest
            ``student_params`` first.
        teacher_macro: the teachers' macro average, if known.
        teacher_params_total: parameters of the teacher(s) serving every task, if known.
    """

    fronts: dict[str, pd.DataFrame]
    hypervolumes: dict[str, float]
    csvs: dict[str, Path]
    macro_csv: Path
    figure: Path | None
    table_csv: Path
    macro_front: pd.DataFrame
    macro_hypervolume: float
    table: pd.DataFrame
    teacher_macro: float | None = None
    teacher_params_total: int | None = None


def write_task_fronts(
    records: list[TrialResult],
    sweep_dir: str | Path,
    tasks: Sequence[TaskInfo],
    *,
    teacher_macro: float | None = None,
    teacher_params_total: int | None = None,
    plot: bool = True,
) -> TaskFronts:
    """Write each task's front, the macro front, a per-task metric table and a combined plot.

    Writes ``fronts/<task>.csv`` and ``fronts/macro.csv``, ``task_metrics.csv`` and
    ``pareto_tasks.png`` under ``sweep_dir``. Works with no finished trial (empty fronts,
    hypervolumes 0.0, a plot that says so), with failed or running trials mixed in and with
    trials that lack a task's keys or report NaN for it (left out of that task's front).

    Args:
        records: every trial of the sweep, finished or not.
        sweep_dir: folder to write to; created if missing.
        tasks: the sweep's tasks, in display order.
        teacher_macro: the teachers' macro average; by default the mean of the tasks'
            ``teacher_metric`` when every task has one.
        teacher_params_total: parameters of the teacher(s) serving every task, for the
            macro compression ratio, hypervolume and plot; None if unknown.
        plot: draw ``pareto_tasks.png``.

    Returns:
        The fronts, hypervolumes and paths written.

    Raises:
        ValueError: ``tasks`` is empty, names a task twice or names one ``macro``.
    """
    _check_tasks(tasks)
    out = Path(sweep_dir)
    (out / "fronts").mkdir(parents=True, exist_ok=True)
    if teacher_macro is None:
        teacher_macro = _mean_teacher_metric(tasks)
    trials, points, macro = _all_points(records, tasks, teacher_params_total)
    fronts = {t.name: _front(points[t.name]) for t in tasks}
    csvs = {t.name: out / "fronts" / f"{t.name}.csv" for t in tasks}
    for name, path in csvs.items():
        fronts[name].to_csv(path, index=False)
    macro_front = _front(macro)
    macro_front.to_csv(out / "fronts" / "macro.csv", index=False)
    table = _task_table(trials, tasks)
    table.to_csv(out / "task_metrics.csv", index=False)
    figure = None
    if plot:
        figure = plot_task_fronts(records, out / "pareto_tasks.png", tasks,
                                  teacher_macro=teacher_macro,
                                  teacher_params_total=teacher_params_total)
    return TaskFronts(
        fronts=fronts,
        hypervolumes={t.name: _hypervolume(points[t.name], t.teacher_params, t.baseline)
                      for t in tasks},
        csvs=csvs,
        macro_csv=out / "fronts" / "macro.csv",
        figure=figure,
        table_csv=out / "task_metrics.csv",
        macro_front=macro_front,
        macro_hypervolume=_hypervolume(macro, teacher_params_total, _mean_baseline(tasks)),
        table=table,
        teacher_macro=teacher_macro,
        teacher_params_total=teacher_params_total,
    )


def _check_tasks(tasks: Sequence[TaskInfo]) -> None:
    names = [t.name for t in tasks]
    if not names:
        raise ValueError("tasks is empty: pass one TaskInfo per task of the sweep")
    if len(set(names)) != len(names) or MACRO in names:
        raise ValueError(f"task names must be unique and not {MACRO!r}, got {names}")


def _mean_teacher_metric(tasks: Sequence[TaskInfo]) -> float | None:
    values = [t.teacher_metric for t in tasks]
    return None if any(v is None for v in values) else float(np.mean(values))


def _mean_baseline(tasks: Sequence[TaskInfo]) -> float:
    return float(np.mean([t.baseline for t in tasks]))


# ----------------------------------------------------------------------------- frames


def _all_points(
    records: list[TrialResult], tasks: Sequence[TaskInfo], teacher_params_total: int | None
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.DataFrame]:
    """The trials frame, each task's candidates and the macro candidates (``on_front`` marked)."""
    trials = trials_frame(records)
    points = {t.name: _task_points(trials, t) for t in tasks}
    return trials, points, _macro_points(trials, tasks, teacher_params_total)


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as floats; all NaN when no trial reported it."""
    if column not in frame:
        return np.full(len(frame), np.nan)
    return frame[column].to_numpy(dtype=float, na_value=np.nan)


def _task_points(trials: pd.DataFrame, task: TaskInfo) -> pd.DataFrame:
    """Finished trials measured on ``task``, fewest task parameters first."""
    done = trials[trials["status"] == FINISHED]
    metric = _column(done, f"dev_{task.name}/metric")
    params = _column(done, f"dev_{task.name}/params")
    keep = np.isfinite(metric) & np.isfinite(params)
    before = _column(done, f"dev_{task.name}/metric_before_finetune")[keep]
    extra = {"metric_before_finetune": before,
             "macro": done["metric"].to_numpy(dtype=float)[keep],
             "student_params": done["student_params"].array[keep]}
    frame = _points(done[keep], metric[keep], params[keep], task.teacher_params, extra)
    frame["on_front"] = pareto_mask(frame["metric"].to_numpy(dtype=float),
                                    frame["params"].to_numpy(dtype=float))
    return frame.reset_index(drop=True)


def _macro_points(
    trials: pd.DataFrame, tasks: Sequence[TaskInfo], teacher_params_total: int | None
) -> pd.DataFrame:
    """Finished trials with a macro metric and a size; ``on_front`` is that of ``pareto.csv``."""
    done = trials[eligible(trials)]
    extra: dict[str, Any] = {}
    for task in tasks:
        extra[task.name] = _column(done, f"dev_{task.name}/metric")
        extra[f"{task.name}_params"] = _int_array(_column(done, f"dev_{task.name}/params"))
    params = done["student_params"].to_numpy(dtype=float, na_value=np.nan)
    frame = _points(done, done["metric"].to_numpy(dtype=float), params, teacher_params_total,
                    extra)
    recorded = done["compression_ratio"].to_numpy()[frame.index]
    frame["compression_ratio"] = np.where(np.isnan(recorded), frame["compression_ratio"], recorded)
    frame["on_front"] = done["on_front"].to_numpy()[frame.index]
    return frame.reset_index(drop=True)


def _points(
    rows: pd.DataFrame, metric: np.ndarray, params: np.ndarray, teacher_params: int | None,
    extra: dict[str, Any],
) -> pd.DataFrame:
    """The front columns for ``rows``, sorted by ``params`` then trial id (index: row order)."""
    ratio = (teacher_params / params) if teacher_params else np.full(len(params), np.nan)
    frame = pd.DataFrame({
        "trial_id": rows["trial_id"].to_numpy(),
        "method": rows["method"].to_numpy(),
        "student": rows["student"].to_numpy(),
        "metric": metric,
        "params": _int_array(params),
        "compression_ratio": ratio,
        **extra,
    })
    settings = rows[[c for c in rows.columns if c.startswith("setting/")]]
    frame = pd.concat([frame, settings.reset_index(drop=True)], axis=1)
    return frame.sort_values(["params", "trial_id"], kind="stable")


def _int_array(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Parameter counts as nullable integers (NaN -> <NA>)."""
    values = np.round(np.asarray(values, dtype=float))
    return pd.array([None if np.isnan(v) else int(v) for v in values], dtype="Int64")


def _front(points: pd.DataFrame) -> pd.DataFrame:
    return points[points["on_front"]].drop(columns="on_front").reset_index(drop=True)


def _hypervolume(points: pd.DataFrame, teacher_params: int | None, ref_metric: float) -> float:
    """As ``render._front_hypervolume``: params over the teacher's (or the largest student's)."""
    scale = teacher_params if teacher_params else points["params"].max()
    front = points[points["on_front"]]
    return scaled_hypervolume(front["metric"].to_numpy(dtype=float), front["params"].to_numpy(dtype=float),
                              None if pd.isna(scale) else float(scale), ref_metric)


def _task_table(trials: pd.DataFrame, tasks: Sequence[TaskInfo]) -> pd.DataFrame:
    """One row per finished trial with the macro and every task's metric and size."""
    done = trials[trials["status"] == FINISHED]
    table = done[["trial_id", "method", "student", "student_params"]].copy()
    table["macro"] = done["metric"].to_numpy(dtype=float)
    for task in tasks:
        table[task.name] = _column(done, f"dev_{task.name}/metric")
        table[f"{task.name}_params"] = _int_array(_column(done, f"dev_{task.name}/params"))
    return table.reset_index(drop=True)  # trials_frame already sorts by student_params


# ----------------------------------------------------------------------------- tables


def task_fronts_table(fronts: TaskFronts, tasks: Sequence[TaskInfo]) -> Table:
    """Each task's front in one line, and a macro line, as a rich Table.

    Columns: task, metric, front size (of the finished trials measured on the task), the best
    metric on the front with its parameters (millions) and method, the teacher's metric and
    the hypervolume.
    """
    from rich.table import Table

    headers, rows = _summary_rows(fronts, tasks)
    table = Table(title=f"Per-task Pareto fronts: {len(fronts.table)} finished trials")
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i in (0, 1, 5) else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _summary_rows(
    fronts: TaskFronts, tasks: Sequence[TaskInfo]
) -> tuple[list[str], list[list[str]]]:
    headers = ["task", "metric", "front", "best", "params (M)", "method", "teacher", "hypervolume"]
    rows = []
    for task in tasks:
        measured = _measured(fronts.table, task.name)
        rows.append(_summary_row(task.name, task.metric_name, fronts.fronts[task.name], measured,
                                 task.teacher_metric, fronts.hypervolumes[task.name]))
    rows.append(_summary_row(MACRO, "mean", fronts.macro_front,
                             int(fronts.table["macro"].notna().sum()), fronts.teacher_macro,
                             fronts.macro_hypervolume))
    return headers, rows


def _measured(table: pd.DataFrame, name: str) -> int:
    """Finished trials with a finite metric and size for ``name``: those that compete."""
    metric = table[name].to_numpy(dtype=float)
    params = table[f"{name}_params"].to_numpy(dtype=float, na_value=np.nan)
    return int((np.isfinite(metric) & np.isfinite(params)).sum())


def _summary_row(
    name: str, metric_name: str, front: pd.DataFrame, measured: int,
    teacher_metric: float | None, hv: float,
) -> list[str]:
    best: dict[str, Any] = {"metric": None, "params": None, "method": None}
    if not front.empty:  # idxmax keeps the first of equals: the fewest parameters
        best = front.loc[front["metric"].idxmax()].to_dict()
    return [name, metric_name, f"{len(front)} of {measured}", format_number(best["metric"], ".4f"),
            format_number(format_millions(best["params"]), ".2f"), format_text(best["method"]),
            format_number(teacher_metric, ".4f"), f"{hv:.4f}"]


def markdown_task_fronts(fronts: TaskFronts, tasks: Sequence[TaskInfo]) -> str:
    """Each task's front, then the macro front, as GitHub markdown: a bold title and a table.

    Table columns: trial, method, student, the metric, parameters serving the task (millions)
    and compression versus that task's teacher (teacher parameters / those parameters).
    """
    sections = [
        _markdown_front(f"{t.name} ({t.metric_name})", fronts.fronts[t.name], t.metric_name,
                        t.teacher_metric, t.teacher_params, fronts.hypervolumes[t.name])
        for t in tasks
    ]
    sections.append(_markdown_front(f"{MACRO} (mean over {len(tasks)} tasks)",
                                    fronts.macro_front, MACRO, fronts.teacher_macro,
                                    fronts.teacher_params_total, fronts.macro_hypervolume))
    return "\n".join(sections)


def _markdown_front(
    title: str, front: pd.DataFrame, metric_name: str, teacher_metric: float | None,
    teacher_params: int | None, hv: float,
) -> str:
    teacher = f"teacher {format_number(teacher_metric, '.4f')}"
    if teacher_params:
        teacher += f", {teacher_params / 1e6:.2f}M params"
    headers = ["trial", "method", "student", metric_name, "params (M)", "compression"]
    lines = [f"**{title}**: {len(front)} on the front; {teacher}; hypervolume {hv:.4f}", "",
             markdown_row(headers), "|---|---|---|---:|---:|---:|"]
    for rec in front.to_dict("records"):
        lines.append(markdown_row([
            str(rec["trial_id"]), format_text(rec["method"]), format_text(rec["student"]),
            format_number(rec["metric"], ".4f"), format_number(format_millions(rec["params"]), ".2f"),
            format_number(rec["compression_ratio"], ".1f", suffix="x"),
        ]))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- plot


def plot_task_fronts(
    records: list[TrialResult],
    path: str | Path,
    tasks: Sequence[TaskInfo],
    *,
    teacher_macro: float | None = None,
    teacher_params_total: int | None = None,
) -> Path:
    """Draw one panel per task and one macro panel, and save the figure as an image.

    In each panel x is the parameters serving the task in millions (log scale; the whole
    student's for the macro panel) and y the task's metric (the macro average for the macro
    panel). Every finished trial measured on the task is a point coloured by method, its
    marker the student family; multi-task trials are larger, edged and red, so they stand out
    from single-task methods. The front is a step line through ringed points and the teacher
    a star. One legend serves all panels.

    Args:
        records: every trial of the sweep.
        path: image file to write (format from the suffix, e.g. ``.png``); parents created.
        tasks: the sweep's tasks, one panel each, in this order.
        teacher_macro: the teachers' macro average; by default the mean of the tasks'
            ``teacher_metric`` when every task has one.
        teacher_params_total: parameters of the teacher(s) serving every task, or None.

    Returns:
        ``path`` as a Path.

    Raises:
        ValueError: ``tasks`` is empty, names a task twice or names one ``macro``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    _check_tasks(tasks)
    if teacher_macro is None:
        teacher_macro = _mean_teacher_metric(tasks)
    trials, points, macro = _all_points(records, tasks, teacher_params_total)
    panels = [(f"{t.name} ({t.metric_name})", t.metric_name, points[t.name], t.teacher_metric,
               t.teacher_params) for t in tasks]
    panels.append((f"{MACRO} (mean over {len(tasks)} tasks)", f"{MACRO} average", macro,
                   teacher_macro, teacher_params_total))
    xlabels = ["parameters serving the task (log scale)"] * len(tasks)
    xlabels.append("student parameters, all tasks (log scale)")
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.6 * nrows + 1.0), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    done = trials[trials["status"] == FINISHED]
    keys = _Keys.of(done)
    for i, (title, label, frame, t_metric, t_params) in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _draw_panel(ax, frame, keys, label, t_metric, t_params, empty_sweep=done.empty)
        ax.set_xlabel(xlabels[i], fontsize=8)
        ax.set_title(title, fontsize=10, fontweight="bold")
    _legend(fig, keys, any(p[3] is not None and p[4] for p in panels))
    fig.suptitle(f"multi-task distillation: metric vs parameters per task\n{_counts(trials)}",
                 fontsize=11)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


_PALETTE = tuple(f"C{i}" for i in range(10) if i != 3)  # C3 (red) is close to multitask's colour


@dataclass(frozen=True)
class _Keys:
    """Methods and student families of the finished trials: one colour and marker for all panels."""

    methods: tuple[str, ...]
    families: tuple[str, ...]

    @staticmethod
    def of(done: pd.DataFrame) -> _Keys:
        return _Keys(tuple(sorted(set(_names(done["method"])))),
                     tuple(sorted(set(_names(done["student"])))))

    def style(self, method: str) -> dict[str, Any]:
        if method == MULTITASK:
            return {"color": "crimson", "s": 60, "edgecolors": "black", "linewidths": 0.8,
                    "alpha": 0.95}
        singles = [m for m in self.methods if m != MULTITASK]
        return {"color": _PALETTE[singles.index(method) % len(_PALETTE)], "s": 28, "alpha": 0.75}

    def marker(self, family: str) -> str:
        from raykd.report.plot import MARKERS

        return MARKERS[self.families.index(family) % len(MARKERS)]


def _names(column: pd.Series) -> list[str]:
    return [str(v) if isinstance(v, str) else "unknown" for v in column.to_numpy(dtype=object)]


def _draw_panel(
    ax: Any, points: pd.DataFrame, keys: _Keys, metric_label: str, teacher_metric: float | None,
    teacher_params: int | None, *, empty_sweep: bool,
) -> None:
    from raykd.report.plot import draw_teacher, format_axes

    x = points["params"].to_numpy(dtype=float, na_value=np.nan) / 1e6
    y = points["metric"].to_numpy(dtype=float)
    methods, families = np.array(_names(points["method"])), np.array(_names(points["student"]))
    for method, family in sorted(set(zip(methods, families))):
        group = (methods == method) & (families == family)
        ax.scatter(x[group], y[group], marker=keys.marker(family),
                   zorder=3, **keys.style(method))
    front = points["on_front"].to_numpy(dtype=bool)
    if front.any():
        ax.step(x[front], y[front], where="post", color="black", linewidth=1.2,
                zorder=2)
        ax.scatter(x[front], y[front], s=90, facecolors="none",
                   edgecolors="black", linewidths=1.2, zorder=4)
    format_axes(ax, metric_label)  # before the teacher: its label would open a legend per panel
    if teacher_params:
        draw_teacher(ax, TeacherSummary(path="teacher", params=teacher_params,
                                         metric=teacher_metric))
    elif teacher_metric is not None:
        ax.axhline(teacher_metric, color="gray", linestyle=":", linewidth=1, zorder=1)
    if points.empty:
        note = "no finished trials" if empty_sweep else "no trial measured"
        ax.text(0.5, 0.3, note, transform=ax.transAxes, ha="center", va="center", fontsize=11,
                color="dimgray")
    if not ax.has_data():
        ax.tick_params(which="both", bottom=False, left=False, labelbottom=False,
                       labelleft=False)


def _legend(fig: Any, keys: _Keys, teacher: bool) -> None:
    from matplotlib.lines import Line2D

    def handle(label: str, **kw: Any) -> Line2D:
        return Line2D([], [], linestyle="none", label=label, **kw)

    handles = []
    for method in keys.methods:
        style = keys.style(method)
        label = f"{method} (one shared student)" if method == MULTITASK else method
        handles.append(handle(label, marker="o", markersize=8 if method == MULTITASK else 6,
                              color=style["color"], markeredgecolor=style.get("edgecolors")))
    if len(keys.families) > 1:
        handles += [handle(f, marker=keys.marker(f), color="gray") for f in keys.families]
    if keys.methods:
        handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="none",
                              markersize=8, label="Pareto front"))
    if teacher:
        handles.append(handle("teacher", marker="*", markersize=13, color="gold",
                              markeredgecolor="black"))
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 8),
                   fontsize=8, frameon=False)


def _counts(trials: pd.DataFrame) -> str:
    status = trials["status"]
    parts = [f"{int((status == FINISHED).sum())} finished trials"]
    if n_failed := int((status == FAILED).sum()):
        parts.append(f"{n_failed} failed (not shown)")
    if n_open := int((~status.isin([FINISHED, FAILED])).sum()):
        parts.append(f"{n_open} running or pending (not shown)")
    return "; ".join(parts)
