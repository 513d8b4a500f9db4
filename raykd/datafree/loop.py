"""The data-free distillation loop: a student, a trainer that makes its transfer batches, no task data.

Like :func:`raykd.distill.loop.fit` (same optimiser, schedule, clipping, per-epoch evaluation and
``report``), but an epoch is ``steps_per_epoch`` student steps on batches the trainer makes, and
the trainer may update its generator before each step. One worker per trial (no DDP).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from raykd.distill.loop import LoopSettings, LoopState, autocast, build_optimiser, optimiser_step

__all__ = ["fit_data_free", "TrainableStudent"]


class TrainableStudent(nn.Module):
    """The student plus the trainer's extra modules, so one optimiser and one checkpoint hold all."""

    def __init__(self, student: nn.Module, extra: dict[str, nn.Module]):
        super().__init__()
        self.student = student
        self.extra = nn.ModuleDict(extra)


def fit_data_free(
    student: nn.Module,
    trainer,
    settings: LoopSettings,
    *,
    steps_per_epoch: int,
    evaluate: Callable[[nn.Module], dict[str, float]],
    primary: str,
    report: Callable[[dict[str, Any], LoopState], None],
    state: LoopState | None = None,
    on_step: Callable[[int], None] | None = None,
) -> LoopState:
    """Train ``student`` with a data-free ``trainer`` for the remaining epochs.

    Args:
        student: the student (weights already loaded when resuming).
        trainer: a :class:`~raykd.datafree.base.DataFreeTrainer`.
        settings: optimisation settings (``batch_size`` is the trainer's concern).
        steps_per_epoch: student steps between evaluations.
        evaluate: dev metrics of the student; must contain ``primary``.
        primary: metric that selects the best epoch.
        report: called once per epoch with metrics (student losses, generator losses and the
            trainer's diagnostics, averaged over the epoch) and the resumable state, whose
            ``extra`` holds the trainer's state and ``samples`` (readable generated samples).
        state: resume from this state.
        on_step: called after every student step with the batch size.

    Returns:
        The final state.

    Raises:
        NonFiniteLossError: a student loss became NaN or infinite.
    """
    state = state or LoopState()
    if state.extra.get("trainer"):
        trainer.load_state_dict(state.extra["trainer"])
    model = TrainableStudent(student, trainer.student_modules)
    optimizer, scheduler = build_optimiser(model, settings, steps_per_epoch * settings.epochs, state)
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        started = time.perf_counter()
        torch.manual_seed(settings.seed * 1000 + epoch)
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)
        model.train()
        for step in range((epoch - 1) * steps_per_epoch, epoch * steps_per_epoch):
            for name, value in trainer.generator_steps(student, step).items():
                sums[name] += value
                counts[name] += 1
            with autocast(settings):
                loss, parts = trainer.student_loss(student, step)
            optimiser_step(model, loss, optimizer, scheduler, settings.grad_clip, epoch=epoch, step=step)
            for name, value in {"train_loss": loss.item(), **parts}.items():
                sums[name] += value
                counts[name] += 1
            if on_step is not None:
                on_step(settings.batch_size)
        seconds = time.perf_counter() - started
        student.eval()
        if hasattr(trainer, "prepare_student"):
            trainer.prepare_student(student)
        diagnostics, samples = trainer.diagnostics(student)
        metrics = evaluate(student)
        if metrics[primary] > state.best_metric:
            state.best_metric, state.best_epoch = metrics[primary], epoch
        state.epoch = epoch
        state.optimizer, state.scheduler = optimizer.state_dict(), scheduler.state_dict()
        state.extra = {"trainer": trainer.state_dict(), "samples": samples}
        averages = {name: sums[name] / counts[name] for name in sums}
        report({"epoch": epoch, **averages, "train_seconds": seconds,
                "examples_per_s": steps_per_epoch * settings.batch_size / seconds, **diagnostics, **metrics,
                "best_metric": state.best_metric, "best_epoch": state.best_epoch}, state)
    return state
