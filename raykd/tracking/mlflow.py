"""MLflow tracking: one parent run per sweep, one child run per trial.

Everything goes through an explicit ``MlflowClient(tracking_uri)``; only the sweep driver writes,
so a local SQLite store sees no concurrent writers. The default store is
``sqlite:///<storage>/mlflow.db`` with artifacts under ``<storage>/mlartifacts``; any tracking
server URI (``http://host:5000``) works the same way.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from raykd.tracking.uri import check_tracking_uri, default_tracking_uri

__all__ = ["SweepTracker", "default_tracking_uri", "check_tracking_uri"]

_MAX_PARAM = 6000  # MLflow's limit on a param value's length


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat


def _numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}


class SweepTracker:
    """Writes a sweep and its trials to MLflow.

    Holds only strings (URI, experiment id, parent run id) and builds its client on first use,
    so it pickles: Ray Tune stores the sweep's callbacks, and a resumed sweep unpickles them.

    Args:
        tracking_uri: MLflow tracking URI (absolute ``sqlite:///...`` or ``http://...``).
        experiment_id: the sweep's experiment.
        parent_run_id: the sweep's parent run, once started.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str | None = None):
        self.tracking_uri, self.experiment_id, self.parent_run_id = tracking_uri, experiment_id, parent_run_id
        self._client: MlflowClient | None = None

    @classmethod
    def for_experiment(cls, tracking_uri: str, experiment: str, artifact_root: str | Path | None = None,
                       parent_run_id: str | None = None) -> "SweepTracker":
        """The tracker of experiment ``experiment``, created if missing (artifacts under ``artifact_root``)."""
        client = MlflowClient(tracking_uri)
        found = client.get_experiment_by_name(experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = Path(artifact_root).resolve().as_uri() if artifact_root else None
            experiment_id = client.create_experiment(experiment, artifact_location=location)
        return cls(tracking_uri, experiment_id, parent_run_id)

    @property
    def client(self) -> MlflowClient:
        """The MLflow client, created on first use."""
        if self._client is None:
            self._client = MlflowClient(self.tracking_uri)
        return self._client

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_client": None}

    def child_runs(self) -> dict[str, str]:
        """Trial id -> run id of the trial runs already under the parent run."""
        runs = self.client.search_runs([self.experiment_id], f"tags.mlflow.parentRunId = '{self.parent_run_id}'",
                                       max_results=10000)
        return {run.data.tags["raykd.trial_id"]: run.info.run_id for run in runs if "raykd.trial_id" in run.data.tags}

    def start_sweep(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> str:
        """Create the sweep's parent run and log its settings; return its run id."""
        run = self.client.create_run(self.experiment_id, run_name=name, tags={"raykd.kind": "sweep", **(tags or {})})
        self.parent_run_id = run.info.run_id
        self.log_params(self.parent_run_id, params)
        return self.parent_run_id

    def start_trial(self, trial_id: str, settings: Mapping[str, Any], name: str | None = None) -> str:
        """Create a trial's child run under the sweep (named ``name``, default ``trial-<id>``) and log every
        resolved setting as a param."""
        tags = {"mlflow.parentRunId": self.parent_run_id or "", "raykd.kind": "trial", "raykd.trial_id": trial_id}
        run = self.client.create_run(self.experiment_id, run_name=name or f"trial-{trial_id}", tags=tags)
        self.log_params(run.info.run_id, settings)
        return run.info.run_id

    def rename_run(self, run_id: str, name: str) -> None:
        """Give a run a new name (a trial's name gains its size once the student is built)."""
        self.client.update_run(run_id, name=name)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        """Log (nested) params, flattened with ``/``."""
        flat = [Param(k, str(v)[:_MAX_PARAM]) for k, v in _flatten(params).items()]
        for start in range(0, len(flat), 100):
            self.client.log_batch(run_id, params=flat[start:start + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
        """Log the finite numeric entries of ``metrics`` at ``step`` in one request."""
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in _numeric(metrics).items()]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        """Set string tags on a run."""
        self.client.log_batch(run_id, tags=[RunTag(k, str(v)[:_MAX_PARAM]) for k, v in tags.items()])

    def log_artifact(self, run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload one file to a run (under ``artifact_path`` if given)."""
        self.client.log_artifact(run_id, str(path), artifact_path)

    def end_run(self, run_id: str, failed: bool = False, reason: str | None = None) -> None:
        """Close a run as FINISHED, or FAILED with ``reason`` in the ``raykd.error`` tag."""
        if failed and reason:
            self.set_tags(run_id, {"raykd.error": reason})
        status = RunStatus.to_string(RunStatus.FAILED if failed else RunStatus.FINISHED)
        self.client.set_terminated(run_id, status=status)
