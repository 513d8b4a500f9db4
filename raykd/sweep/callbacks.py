"""The Ray Tune callback that tracks each trial in MLflow (the progress view is in progress.py).

Tune calls it in the driver process, so MLflow sees a single writer. It turns Tune's trial
events into calls on a plain :class:`~raykd.tracking.mlflow.SweepTracker`.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from raykd.sweep.results import _last_line, flatten_settings
from raykd.tracking.mlflow import SweepTracker

__all__ = ["MlflowTrialCallback", "error_text"]

_EPOCH_KEYS = ("metric", "best_metric", "train_loss", "examples_per_s", "train_seconds")


def error_text(trial) -> str:
    """The last line of a failed trial's error file (the exception and its message)."""
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
            from raykd.registry import uses_task_train_data

            settings = flatten_settings(trial.config)
            # data-free trials never read the task's training split (the data layer refuses it)
            settings["used_task_train_data"] = str(uses_task_train_data(trial.config["method"])).lower()
            self.runs[trial.trial_id] = self.tracker.start_trial(trial.trial_id, settings)
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
        self.tracker.end_run(self._run(trial), failed=True, reason=error_text(trial))
