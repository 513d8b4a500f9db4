"""Live progress of a sweep: one line per trial (id, method, student, size, state, epoch, metric).

On a terminal the view is a table, one row per trial, redrawn in place as trials report; in a
log or CI (no terminal) each trial event is printed as one line instead. Ray Tune's own result
tables stay off (``verbose=0``); the sweep ends with raykd's Pareto table and a summary line.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from ray.tune import Callback

from raykd.sweep.callbacks import error_text

__all__ = ["ProgressCallback", "TrialRow"]


@dataclass
class TrialRow:
    """What the view shows of one trial."""

    trial_id: str
    method: str
    student: str
    state: str = "started"
    params: float | None = None
    epoch: int | None = None
    metric: float | None = None
    best: float | None = None
    note: str = ""

    def line(self, metric_name: str) -> str:
        """The row as one log line."""
        size = f" {self.params / 1e6:5.2f}M" if self.params else ""
        text = f"trial {self.trial_id} {self.method:8s} {self.student:11s}{size} {self.state:9s}"
        if self.state == "running" and self.epoch is not None:
            text += f" epoch {self.epoch}: {metric_name} {self.metric:.4f}"
        elif self.best is not None:
            text += f" best {metric_name} {self.best:.4f}"
        return f"{text} {self.note}".rstrip()


def _print(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


class ProgressCallback(Callback):
    """Shows every trial's progress during a sweep.

    Args:
        metric_name: the task's primary metric.
        total: trials planned.
        echo: where log lines go (default: stdout).
        live: redraw a table in place (for terminals) instead of printing event lines.
    """

    def __init__(self, metric_name: str, total: int, echo: Callable[[str], Any] | None = None, live: bool = False):
        self.metric_name, self.total, self.live = metric_name, total, live
        self.echo = echo or _print
        self.rows: dict[str, TrialRow] = {}
        self.started = time.monotonic()
        self._view = None

    def __getstate__(self) -> dict:  # Tune pickles callbacks; a live display does not pickle
        return {**self.__dict__, "_view": None}

    def setup(self, **info) -> None:
        self.started = time.monotonic()  # also after a resume, when Tune unpickles this callback

    def _row(self, trial) -> TrialRow:
        if trial.trial_id not in self.rows:
            self.rows[trial.trial_id] = TrialRow(trial.trial_id, trial.config.get("method", "?"),
                                                 trial.config.get("student", "?"))
        row = self.rows[trial.trial_id]
        row.params = (trial.last_result or {}).get("student_params", row.params)
        return row

    def _show(self, row: TrialRow) -> None:
        if self.live:
            self._redraw()
        else:
            self.echo(f"[{time.monotonic() - self.started:6.0f}s] {row.line(self.metric_name)}")

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        row = self._row(trial)
        row.state = "started"
        self._show(row)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if "epoch" not in result or result.get("final"):
            return
        row = self._row(trial)
        row.state, row.epoch, row.metric, row.best = "running", result["epoch"], result["metric"], result.get("best_metric")
        row.params = result.get("student_params", row.params)
        row.note = f"({result.get('examples_per_s', 0):.0f} ex/s)"
        if "tasks_done" in result:  # a single-task method in a multi-task sweep: the macro of the tasks done
            row.note = f"(after {result['tasks_done']} task(s), {result.get('examples_per_s', 0):.0f} ex/s)"
        self._show(row)

    def _ended(self, trials: list, trial) -> int:
        """Trials ended so far, this one included (Tune updates its status after the callback)."""
        return 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        row, last = self._row(trial), trial.last_result or {}
        row.state, row.best = "finished", last.get("best_metric", row.best)
        latency = f"{last['latency_ms']:.2f} ms/example " if last.get("latency_ms") is not None else ""
        row.note = f"{latency}[{self._ended(trials, trial)}/{self.total}]"
        self._show(row)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        row = self._row(trial)
        row.state, row.note = "FAILED", f"{error_text(trial)} [{self._ended(trials, trial)}/{self.total}]"
        self._show(row)

    def on_experiment_end(self, trials: list, **info) -> None:
        if self._view is not None:
            self._redraw()
            self._view.stop()
            self._view = None
        self.echo(self.summary())

    def summary(self) -> str:
        """One line: trials finished and failed, the best metric and the time taken."""
        finished = [r for r in self.rows.values() if r.state == "finished"]
        failed = sum(r.state == "FAILED" for r in self.rows.values())
        minutes, seconds = divmod(int(time.monotonic() - self.started), 60)
        best = max(finished, key=lambda r: r.best if r.best is not None else float("-inf"), default=None)
        best_text = (f"; best {self.metric_name} {best.best:.4f} (trial {best.trial_id}, {best.student})"
                     if best is not None and best.best is not None else "")
        return (f"trials done in {minutes}m{seconds:02d}s: {len(finished)} finished, {failed} failed"
                f"{best_text}")

    def _redraw(self) -> None:
        from rich.live import Live

        if self._view is None:
            self._view = Live(auto_refresh=False, transient=False)
            self._view.start()
        self._view.update(self.table(), refresh=True)

    def table(self):
        """The live view: a rich Table with one row per trial."""
        from rich.table import Table

        elapsed = time.monotonic() - self.started
        ended = sum(r.state in ("finished", "FAILED") for r in self.rows.values())
        table = Table(title=f"sweep: {ended}/{self.total} trials ended, {elapsed:.0f} s", title_justify="left")
        for header in ("trial", "method", "student", "params (M)", "state", "epoch", self.metric_name, "best", ""):
            table.add_column(header, justify="right" if header in ("params (M)", "epoch") else "left")
        for row in self.rows.values():
            style = "red" if row.state == "FAILED" else "green" if row.state == "finished" else None
            table.add_row(row.trial_id, row.method, row.student, f"{row.params / 1e6:.2f}" if row.params else "",
                          row.state, "" if row.epoch is None else str(row.epoch),
                          "" if row.metric is None else f"{row.metric:.4f}",
                          "" if row.best is None else f"{row.best:.4f}", row.note[:70], style=style)
        return table
