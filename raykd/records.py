"""Plain records that cross stage boundaries (no Ray, torch or MLflow types).

The sweep turns Ray's results into :class:`TrialResult` records; the report and the CLI only ever
see these records, so they also work on a sweep read back from disk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["TrialResult", "TeacherSummary", "SELECTED_KEY", "SELECTION_KEY", "NOT_A_RESULT"]

SELECTED_KEY = "selected"
"""Key of a trial's final result that holds the metrics reported with its selected (best) checkpoint."""

SELECTION_KEY = "selection"
"""Key of the value by which a trial's checkpoints are ranked: the one with the highest is the trial's
result (its figures are the trial's figures). It is the epoch's primary metric, or :data:`NOT_A_RESULT`."""

NOT_A_RESULT = float("-inf")
"""The selection value of an epoch that can never be the trial's result but is checkpointed to resume
from: the joint epochs of MKD with per-task fine-tuning, whose result is the fine-tuned students."""


@dataclass
class TrialResult:
    """One trial of a sweep, finished or not.

    Attributes:
        trial_id: Ray Tune trial id.
        status: ``TERMINATED`` (finished), ``ERROR`` (failed), ``RUNNING`` or ``PENDING``.
        method: distillation method name (``vanilla``, ...).
        student: student family name (``bilstm``, ``transformer``).
        settings: every resolved setting of the trial, flattened with ``/`` (``vanilla/temperature``).
        metric_name: the task's primary metric (``accuracy``, ``matthews``, ``f1``, ``pearson``).
        metric: the primary metric of the selected epoch (the best dev value over epochs, whose
            checkpoint the trial keeps); None if the trial never evaluated.
        metrics: all dev metrics of the selected epoch.
        best_epoch: the selected epoch (its checkpoint is ``checkpoint_dir``).
        student_params: total student parameters, embeddings included.
        student_params_non_embedding: student parameters without embedding matrices.
        compression_ratio: teacher total parameters / student total parameters.
        latency_ms: median CPU latency per example at batch 1, one thread, tokenisation excluded.
        epochs_done: epochs completed.
        checkpoint_dir: directory of the best epoch's student checkpoint, if any.
        error: why the trial failed, for failed trials.
        mlflow_run_id: the trial's MLflow child run.
        transfer_examples: examples in the trial's transfer set (training split plus augmented or
            generated sets); None for methods that add none.
    """

    trial_id: str
    status: str
    method: str | None = None
    student: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    metric_name: str = "accuracy"
    metric: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    student_params: int | None = None
    student_params_non_embedding: int | None = None
    compression_ratio: float | None = None
    latency_ms: float | None = None
    epochs_done: int = 0
    best_epoch: int | None = None
    checkpoint_dir: str | None = None
    error: str | None = None
    mlflow_run_id: str | None = None
    transfer_examples: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)


@dataclass
class TeacherSummary:
    """The teacher a sweep distils from, as the report marks it.

    Attributes:
        path: folder or hub id of the teacher.
        params: total parameters.
        metric: the teacher's dev value of the task's primary metric.
        metrics: all the teacher's dev metrics.
        latency_ms: median CPU latency per example at batch 1, one thread.
    """

    path: str
    params: int
    metric: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    latency_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)
