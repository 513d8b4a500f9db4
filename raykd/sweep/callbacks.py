"""Ray Tune callbacks run in the sweep driver: MLflow child runs and one-line progress.

Tune calls these in the driver process, so MLflow sees a single writer and the progress lines
come out in order. Each turns Tune's trial events into calls on plain raykd objects.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

from ray.tune import Callback

from raykd.sweep.results import _last_line, flatten_settings
from raykd.tracking.mlflow import SweepTracker

__all__ = ["MlflowTrialCallback", "ProgressCallback"]

_EPOCH_KEYS = ("metric", "best_metric", "train_loss", "examples_per_s", "train_seconds")


def _error_text(trial) -> str:
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return _last_line(Path(path).read_text())
    return "trial failed (no error file)"


class MlflowTrialCallback(Callback):
    """One MLflow child run per trial: settings as params, per-epoch metrics, final metrics, checkpoint.

    A resumed sweep reuses the child run a trial already has, so no trial is tracked twice.

    Args:
        tracker: the sweep's tracker (parent run already started).
    """

    def __init__(self, tracker: SweepTracker):
        self.tracker = tracker
        self.runs: dict[str, str] | None = None  # trial id -> run id, read from MLflow on first use

    def __getstate__(self) -> dict:
        return {**self.__dict__, "runs": None}

    def _run(self, trial) -> str:
        if self.runs is None:
            self.runs = self.tracker.child_runs()
        if trial.trial_id not in self.runs:
            self.runs[trial.trial_id] = self.tracker.start_trial(trial.trial_id, flatten_settings(trial.config))
        return self.runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if result.get("final") or "epoch" not in result:
            return
        metrics = {k: v for k, v in result.items() if k not in ("epoch", "trial_id", "timestamp", "pid")
                   and not k.startswith(("time_", "iterations_", "training_", "config"))}
        self.tracker.log_metrics(self._run(trial), metrics, step=int(result["epoch"]))

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        run_id, last = self._run(trial), trial.last_result or {}
        keys = ("best_metric", "best_epoch", "student_params", "student_params_non_embedding",
                "compression_ratio", "latency_ms")
        self.tracker.log_metrics(run_id, {k: last[k] for k in keys if k in last})
        folder = Path(last["checkpoint_dir"]) if last.get("checkpoint_dir") else None
        if folder is not None and folder.is_dir():
            # the student (weights, architecture, metrics); the optimiser state stays in storage for resuming
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.name != "train_state.pt":
                    self.tracker.log_artifact(run_id, path, "student")
        self.tracker.end_run(run_id)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.tracker.end_run(self._run(trial), failed=True, reason=_error_text(trial))


def _print(line: str) -> None:
    print(line, file=sys.stdout, flush=True)


class ProgressCallback(Callback):
    """Prints one line per trial event: id, method, student, epoch, metric, state.

    Args:
        metric_name: the task's primary metric.
        total: trials planned.
        echo: where lines go (default: stdout, flushed).
    """

    def __init__(self, metric_name: str, total: int, echo: Callable[[str], Any] | None = None):
        self.metric_name, self.total = metric_name, total
        self.echo = echo or _print
        self.started = time.monotonic()

    def setup(self, **info) -> None:
        self.started = time.monotonic()  # also after a resume, when Tune unpickles this callback

    def _line(self, trial, state: str, extra: str = "") -> None:
        cfg = trial.config
        student = cfg.get("student", "?")
        size = (trial.last_result or {}).get("student_params")
        size_text = f" {size / 1e6:5.2f}M" if size else ""
        elapsed = time.monotonic() - self.started
        self.echo(f"[{elapsed:6.0f}s] trial {trial.trial_id} {cfg.get('method', '?'):8s} "
                  f"{student:11s}{size_text} {state:9s} {extra}".rstrip())

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._line(trial, "started")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if "epoch" in result and not result.get("final"):
            self._line(trial, "running", f"epoch {result['epoch']}: {self.metric_name} {result['metric']:.4f} "
                                         f"({result.get('examples_per_s', 0):.0f} ex/s)")

    def _ended(self, trials: list, trial) -> int:
        """Trials ended so far, this one included (Tune updates its status after the callback)."""
        return 1 + sum(t.status in ("TERMINATED", "ERROR") for t in trials if t is not trial)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        last = trial.last_result or {}
        best = last.get("best_metric")
        text = f"best {self.metric_name} {best:.4f}" if best is not None else ""
        if last.get("latency_ms") is not None:
            text += f", {last['latency_ms']:.2f} ms/example"
        self._line(trial, "finished", f"{text} [{self._ended(trials, trial)}/{self.total}]")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._line(trial, "FAILED", f"{_error_text(trial)} [{self._ended(trials, trial)}/{self.total}]")
