"""What every trial of a sweep shares (plain data; no Ray import)."""

from __future__ import annotations

from dataclasses import dataclass

from raykd.config import ResourcesConfig, StageResources
from raykd.data.tasks import TaskSpec
from raykd.transfer.store import TransferSource

__all__ = ["TrialContext", "PRIMARY_KEY", "OBJECTIVES"]

PRIMARY_KEY = "best_metric"
"""Result key Optuna maximises: the best dev value of the task's primary metric so far."""

OBJECTIVES = ((PRIMARY_KEY, "max"), ("student_params", "min"))
"""Optuna's objectives, with their directions."""


@dataclass(frozen=True)
class TrialContext:
    """The fixed part of every trial of one sweep, built once by the sweep driver.

    Attributes:
        task: the task being distilled.
        train_cache: ``.npz`` of the task's training split with the teacher's logits; None when
            every method of the sweep is data-free (then nothing reads that split).
        eval_caches: eval split name -> ``.npz`` (``dev``; MNLI has two).
        teacher_path: teacher folder or hub id (students initialised from teacher weights read it).
        teacher_config: the teacher's ``config.json``.
        teacher_params: teacher total parameters (for the compression ratio).
        pad_id: the tokenizer's padding id.
        max_length: tokens per example.
        resources: Ray Train resources per trial.
        train_storage: absolute folder (or URI) where Train runs and checkpoints go.
        seed: the sweep seed.
        ood_cache: ``.npz`` of the out-of-domain transfer set with the teacher's logits, or None.
        shared_cache: folder for artifacts shared by trials and sweeps (AS-DFD's pseudo-sample banks).
        transfer: what augmented and generated transfer sets are built from (None when no method
            reads the training split).
        loopback: the trials run on raykd's own single-node instance, so their process groups
            rendezvous on 127.0.0.1 only (:class:`~raykd.trial.loopback.LoopbackTorchConfig`).
        transfer_stage: ``stages.transfer_sets`` when transfer sets are built as Ray tasks of their
            own (on a cluster: a GPU node for a generator, the trial waits); None: the trial that
            first needs a set builds it on its own resources (one machine).
    """

    task: TaskSpec
    train_cache: str | None
    eval_caches: dict[str, str]
    teacher_path: str
    teacher_config: dict
    teacher_params: int
    pad_id: int
    max_length: int
    resources: ResourcesConfig
    train_storage: str
    seed: int = 0
    ood_cache: str | None = None
    shared_cache: str | None = None
    transfer: TransferSource | None = None
    loopback: bool = False
    transfer_stage: StageResources | None = None
