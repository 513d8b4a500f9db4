"""The Ray Tune callback that tracks each trial in MLflow (the progress view is in progress.py).

Tune calls it in the driver process, so MLflow sees a single writer. It turns Tune's trial
events into calls on a plain :class:`~raykd.tracking.mlflow.SweepTracker`:

* the run's **headline metrics** (``metric``, each dev metric such as ``accuracy``, ``best_epoch``,
  sizes, latency) are logged once, when the trial ends, from the same record trials.csv is
  written from (:func:`~raykd.sweep.results.record_from_result`): the selected epoch's figures,
  whose checkpoint the trial keeps, so MLflow shows what the report shows;
* **per-epoch curves** are logged under ``epoch/<name>`` (``epoch/accuracy``, ``epoch/train_loss``)
  with the epoch as step, and never again at another step;
* where and how the trial ran (node, worker process, the epoch it resumed from) are **tags**
  (``raykd.node_id``, ``raykd.worker_pid``, ``raykd.start_epoch``);
* the child run is named ``<method>-<student>-<size>-<trial id>`` once its size is known.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from raykd.sweep.results import last_line, flatten_settings, record_from_result, split_result
from raykd.tracking.mlflow import SweepTracker

__all__ = ["MlflowTrialCallback", "error_text", "run_name", "CURVE_PREFIX"]

CURVE_PREFIX = "epoch/"
"""Prefix of the per-epoch curves in MLflow (``epoch/accuracy``); the bare names are the headline figures."""


def error_text(trial) -> str:
    """The last line of a failed trial's error file (the exception and its message)."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        return last_line(Path(path).read_text())
    return "trial failed (no error file)"


def run_name(config: dict, trial_id: str, params: float | None = None) -> str:
    """``vanilla-bilstm-2.04M-8ce62dce``: method, student family, parameters (when known), trial id."""
    size = f"-{params / 1e6:.2f}M" if params else ""
    return f"{config.get('method', 'trial')}-{config.get('student', 'student')}{size}-{trial_id}"


class MlflowTrialCallback(Callback):
    """One MLflow child run per trial: settings as params, per-epoch curves, headline metrics, checkpoint.

    A resumed sweep reuses the child run a trial already has, so no trial is tracked twice.

    Args:
        tracker: the sweep's tracker (parent run already started).
        metric_name: the sweep's primary metric (the records' ``metric_name``).
    """

    def __init__(self, tracker: SweepTracker, metric_name: str = "metric"):
        self.tracker = tracker
        self.metric_name = metric_name
        self.runs: dict[str, str] | None = None  # trial id -> run id, read from MLflow on first use
        self.named: set[str] = set()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "runs": None, "named": set()}

    def _run(self, trial) -> str:
        if self.runs is None:
            self.runs = self.tracker.child_runs()
        if trial.trial_id not in self.runs:
            from raykd.registry import uses_task_train_data

            settings = flatten_settings(trial.config)
            # data-free trials never read the task's training split (the data layer refuses it)
            settings["used_task_train_data"] = str(uses_task_train_data(trial.config["method"])).lower()
            self.runs[trial.trial_id] = self.tracker.start_trial(trial.trial_id, settings,
                                                                 name=run_name(trial.config, trial.trial_id))
        return self.runs[trial.trial_id]

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self._run(trial)

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        if result.get("final") or "epoch" not in result:
            return
        run_id = self._run(trial)
        curves, _, bookkeeping = split_result(result)
        self.tracker.log_metrics(run_id, {f"{CURVE_PREFIX}{k}": v for k, v in curves.items()},
                                 step=int(result["epoch"]))
        if bookkeeping:
            self.tracker.set_tags(run_id, {f"raykd.{k}": v for k, v in bookkeeping.items()})
        if trial.trial_id not in self.named and result.get("student_params"):
            self.tracker.rename_run(run_id, run_name(trial.config, trial.trial_id, result["student_params"]))
            self.named.add(trial.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        run_id, last = self._run(trial), trial.last_result or {}
        record = record_from_result(trial.trial_id, trial.config, [last], self.metric_name)
        _, constants, _ = split_result(last)
        headline = {**constants, **record.metrics, "metric": record.metric, "best_epoch": record.best_epoch,
                    "epochs_done": record.epochs_done, "student_params": record.student_params,
                    "student_params_non_embedding": record.student_params_non_embedding,
                    "compression_ratio": record.compression_ratio, "latency_ms": record.latency_ms}
        headline = {k: v for k, v in headline.items() if v is not None and k != "best_metric"}
        self.tracker.log_metrics(run_id, headline, step=int(record.best_epoch or 0))
        self.tracker.set_tags(run_id, {"raykd.selected_epoch": record.best_epoch, "raykd.metric_name": self.metric_name})
        if record.student_params:
            self.tracker.rename_run(run_id, run_name(trial.config, trial.trial_id, record.student_params))
        folder = Path(last["checkpoint_dir"]) if last.get("checkpoint_dir") else None
        if folder is not None and folder.is_dir():
            # the student (weights, architecture, metrics); the optimiser state stays in storage for resuming
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.name.startswith("train_state"):
                    sub = path.parent.relative_to(folder)
                    self.tracker.log_artifact(run_id, path, str(Path("student") / sub) if sub.parts else "student")
        self.tracker.end_run(run_id)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.tracker.end_run(self._run(trial), failed=True, reason=error_text(trial))
