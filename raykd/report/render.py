"""A sweep's report: trial and front tables, CSV files, hypervolume and the Pareto plot.

The only inputs are plain records (:class:`~raykd.records.TrialResult`,
:class:`~raykd.records.TeacherSummary`), so a report works on a live sweep or on one read back
from disk. rich and matplotlib are imported inside the functions that draw with them, and the
plot renders on matplotlib's Agg canvas without touching pyplot or the global backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from raykd.records import TeacherSummary, TrialResult
from raykd.report.pareto import hypervolume, pareto_mask

if TYPE_CHECKING:
    from rich.table import Table

__all__ = [
    "Report",
    "trials_frame",
    "pareto_frame",
    "write_report",
    "front_table",
    "markdown_front",
    "plot_front",
]

FINISHED = "TERMINATED"
FAILED = "ERROR"

_HEAD = ["trial_id", "status", "method", "student", "metric_name", "metric"]
_TAIL = [
    "student_params",
    "student_params_non_embedding",
    "compression_ratio",
    "latency_ms",
    "epochs_done",
    "checkpoint_dir",
    "error",
    "mlflow_run_id",
]
_INT_COLUMNS = ["student_params", "student_params_non_embedding", "epochs_done"]
_FLOAT_COLUMNS = ["metric", "compression_ratio", "latency_ms"]

# Short names for the settings column of the front table; unknown keys keep their last part.
_ABBREV = {
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


@dataclass
class Report:
    """What :func:`write_report` wrote and computed.

    Attributes:
        trials_csv: one row per trial (see :func:`trials_frame`).
        pareto_csv: the non-dominated finished trials, fewest parameters first.
        pareto_png: the plot, or None when plotting was switched off.
        hypervolume: area dominated by the front, in metric x (fraction of the teacher's
            parameters) units.
        front: the rows of ``pareto_csv``.
        trials: the rows of ``trials_csv``.
    """

    trials_csv: Path
    pareto_csv: Path
    pareto_png: Path | None
    hypervolume: float
    front: pd.DataFrame
    trials: pd.DataFrame


def trials_frame(records: list[TrialResult]) -> pd.DataFrame:
    """One row per trial, fewest student parameters first (unknown sizes last).

    Columns: ``trial_id, status, method, student, metric_name, metric``, each dev metric as
    ``dev_<name>``, ``student_params, student_params_non_embedding, compression_ratio,
    latency_ms, epochs_done, checkpoint_dir, error, mlflow_run_id, on_front`` (bool: a
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


def _eligible(frame: pd.DataFrame) -> pd.Series:
    """Finished trials with a metric and a size: the ones that can be on the front."""
    return (
        (frame["status"] == FINISHED) & frame["metric"].notna() & frame["student_params"].notna()
    )


def _on_front(frame: pd.DataFrame) -> np.ndarray:
    eligible = _eligible(frame).to_numpy(dtype=bool)
    mask = np.zeros(len(frame), dtype=bool)
    mask[eligible] = pareto_mask(
        frame["metric"].to_numpy(dtype=float)[eligible],
        frame["student_params"].to_numpy(dtype=float, na_value=np.nan)[eligible],
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
    """Write ``trials.csv``, ``pareto.csv`` and ``pareto.png`` to ``out_dir``.

    Works with no finished trial (an empty front, hypervolume 0.0 and a plot that says so)
    and with failed or running trials mixed in.

    Args:
        records: every trial of the sweep, finished or not.
        out_dir: folder to write to; created if missing.
        teacher: the teacher, or None if unknown.
        task_name: task name for the plot title (``sst2``).
        metric_name: the task's primary metric (``accuracy``).
        ref_metric: worst metric counted by the hypervolume; pass the majority-class baseline.
        plot: draw ``pareto.png``.

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
    png = None
    if plot:
        png = plot_front(
            records, out / "pareto.png", teacher=teacher, task_name=task_name,
            metric_name=metric_name,
        )
    return Report(
        trials_csv=out / "trials.csv",
        pareto_csv=out / "pareto.csv",
        pareto_png=png,
        hypervolume=_front_hypervolume(front, trials, teacher, ref_metric),
        front=front,
        trials=trials,
    )


def _front_hypervolume(
    front: pd.DataFrame, trials: pd.DataFrame, teacher: TeacherSummary | None, ref_metric: float
) -> float:
    scale = teacher.params if teacher is not None else trials["student_params"].max()
    if front.empty or pd.isna(scale) or scale <= 0:
        return 0.0
    return hypervolume(
        front["metric"].to_numpy(dtype=float),
        front["student_params"].to_numpy(dtype=float) / float(scale),
        ref_metric=ref_metric,
        ref_params=1.0,
    )


# ----------------------------------------------------------------------------- front tables


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
        _markdown_row(headers),
        "|" + "|".join("---:" if is_number else "---" for is_number in numeric) + "|",
        *(_markdown_row(row) for row in rows),
    ]
    return "\n".join(lines) + "\n"


def _markdown_row(cells: list[str]) -> str:
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
            f"; teacher {metric_name} {_number(t_metric, '.4f')}, "
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
        row = [str(rec["trial_id"]), _text(rec["method"]), _text(rec["student"])]
        row.append(_number(rec["metric"], ".4f"))
        if percent:
            row.append(f"{100 * rec['metric'] / t_metric:.1f}%")
        row += [
            _number(_millions(rec["student_params"]), ".2f"),
            _number(_millions(rec["student_params_non_embedding"]), ".2f"),
            _number(_compression(rec, teacher), ".1f", suffix="x"),
            _number(rec["latency_ms"], ".2f"),
            summary,
        ]
        rows.append(row)
    return title, headers, rows, numeric


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "-" if _missing(value) else str(value)


def _number(value: Any, spec: str, suffix: str = "") -> str:
    return "-" if _missing(value) else f"{value:{spec}}{suffix}"


def _millions(value: Any) -> float | None:
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
    if isinstance(value, str):
        return value  # categorical choices read best bare: "kl", "mse"
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


# ----------------------------------------------------------------------------- plot


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
    point coloured by student family; the front is a step line through its (ringed) points;
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
    done = trials[_eligible(trials)]
    fig = Figure(figsize=(8, 5.5), dpi=150, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    _draw_trials(ax, done)
    _draw_teacher(ax, teacher)
    _format_axes(ax, metric_name)
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


def _draw_trials(ax: Any, done: pd.DataFrame) -> None:
    families = done["student"].astype(object).where(done["student"].notna(), "unknown")
    for i, family in enumerate(sorted(set(families))):
        group = done[families == family]
        ax.scatter(group["student_params"].astype(float) / 1e6, group["metric"], s=30,
                   color=f"C{i}", alpha=0.8, label=str(family), zorder=3)
    front = done[done["on_front"]]
    if not front.empty:
        x = front["student_params"].astype(float) / 1e6
        ax.step(x, front["metric"], where="post", color="black", linewidth=1.2,
                label="Pareto front", zorder=2)
        ax.scatter(x, front["metric"], s=90, facecolors="none", edgecolors="black",
                   linewidths=1.2, zorder=4)


def _draw_teacher(ax: Any, teacher: TeacherSummary | None) -> None:
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


def _format_axes(ax: Any, metric_name: str) -> None:
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
