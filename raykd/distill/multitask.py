"""The multi-task distillation loop: one student, several tasks' transfer sets, plain PyTorch.

Paper: Liu et al. 2019, "MKD: a Multi-Task Knowledge Distillation Approach for Pretrained Language
Models" (arXiv 1911.03588); the student is :class:`raykd.students.multitask.MultiTaskStudent`.
Each step trains one task's head and the shared encoder on one batch of that task, with that
task's objective and teacher logits. Which task a step serves is :func:`task_schedule`'s choice:

- ``proportional`` (MT-DNN, Liu et al. 2019, arXiv 1901.11504, Algorithm 1): every task's batches
  exactly once per epoch, in shuffled order, so tasks are seen in proportion to their size;
- ``temperature``: each step's task is drawn with ``p_t ∝ n_t ** (1 / tau)`` (``tau = 1``
  proportional, large ``tau`` uniform), which lifts small tasks (as in multilingual BERT's
  language sampling).

Everything else is :func:`raykd.distill.loop.fit`'s: AdamW with linear warm-up and decay over all
steps, gradient clipping, mixed precision on CUDA, evaluation, ``report`` and resumable state after
each epoch.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from raykd.data.encoding import EncodedSplit
from raykd.distill.batching import epoch_batches, to_tensors
from raykd.distill.loop import LoopSettings, LoopState, Objective, build_optimiser, train_step

__all__ = ["SAMPLINGS", "fit_multitask", "task_schedule"]

SAMPLINGS = ("proportional", "temperature")


def task_schedule(sizes: Mapping[str, int], batch_size: int, *, sampling: str, tau: float, epoch: int,
                  seed: int) -> list[str]:
    """The task of every step of one epoch.

    Args:
        sizes: task -> examples in its transfer set (>= 1).
        batch_size: examples per step.
        sampling: ``proportional`` (each task's ``ceil(n_t / batch_size)`` batches once, order
            shuffled) or ``temperature`` (i.i.d. draws with ``p_t ∝ n_t ** (1 / tau)``).
        tau: sampling temperature (> 0; ``temperature`` only).
        epoch, seed: the order is a function of both.

    Returns:
        ``sum_t ceil(n_t / batch_size)`` task names.

    Raises:
        ValueError: unknown ``sampling``, ``tau <= 0``, ``batch_size < 1``, no tasks, or an empty task.
    """
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}, got {sampling!r}")
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if batch_size < 1 or not sizes or min(sizes.values()) < 1:
        raise ValueError(f"need batch_size >= 1 and at least one task, each with examples; "
                         f"got batch_size {batch_size}, sizes {dict(sizes)}")
    names = list(sizes)
    counts = [math.ceil(sizes[t] / batch_size) for t in names]
    rng = np.random.default_rng([seed, epoch])
    if sampling == "proportional":
        tasks = np.repeat(np.arange(len(names)), counts)
        return [names[i] for i in rng.permutation(tasks)]
    logits = np.log(np.asarray([sizes[t] for t in names], dtype=np.float64)) / tau
    p = np.exp(logits - logits.max())
    return [names[i] for i in rng.choice(len(names), size=sum(counts), p=p / p.sum())]


def fit_multitask(
    model: nn.Module,
    objectives: Mapping[str, Objective],
    trains: Mapping[str, EncodedSplit],
    settings: LoopSettings,
    *,
    evaluate: Callable[[nn.Module], dict[str, float]],
    primary: str,
    report: Callable[[dict[str, Any], LoopState], None],
    pad_id: int = 0,
    state: LoopState | None = None,
    sampling: str = "proportional",
    tau: float = 1.0,
    on_step: Callable[[int], None] | None = None,
) -> LoopState:
    """Train a multi-task student for the remaining epochs, evaluating and reporting after each.

    Args:
        model: maps ``(task, input_ids, attention_mask, token_type_ids)`` to that task's
            ``[B, C_task]`` logits (a :class:`~raykd.students.multitask.MultiTaskStudent`).
        objectives: task -> the method's loss on a batch of that task.
        trains: task -> its transfer set, with that task's teacher logits.
        settings: optimisation settings (one ``batch_size`` for every task).
        evaluate: dev metrics of ``model``; must contain ``primary``.
        primary: name of the metric that selects the best epoch (an average over tasks, say).
        report: called once per epoch with ``metrics`` (``fit``'s keys plus ``steps/<task>``)
            and the resumable :class:`LoopState`.
        pad_id: the tokenizer's padding id.
        state: resume from this state (weights must already be loaded into ``model``).
        sampling, tau: the task schedule (see :func:`task_schedule`).
        on_step: called after every optimiser step with the batch's example count.

    Returns:
        The final state.

    Raises:
        ValueError: a task without an objective, or a bad schedule setting.
        NonFiniteLossError: the loss became NaN or infinite.
    """
    missing = sorted(set(trains) - set(objectives))
    if missing:
        raise ValueError(f"no objective for task(s) {', '.join(missing)}")
    state = state or LoopState()
    sizes = {task: len(train) for task, train in trains.items()}
    steps_per_epoch = len(task_schedule(sizes, settings.batch_size, sampling=sampling, tau=tau, epoch=0,
                                        seed=settings.seed))
    optimizer, scheduler = build_optimiser(model, settings, steps_per_epoch * settings.epochs, state)
    for epoch in range(state.epoch + 1, settings.epochs + 1):
        started = time.perf_counter()
        schedule = task_schedule(sizes, settings.batch_size, sampling=sampling, tau=tau, epoch=epoch,
                                 seed=settings.seed)
        train_loss, examples = _train_epoch(model, objectives, trains, schedule, settings, optimizer, scheduler,
                                            epoch=epoch, pad_id=pad_id, on_step=on_step)
        seconds = time.perf_counter() - started
        metrics = evaluate(model)
        if metrics[primary] > state.best_metric:
            state.best_metric, state.best_epoch = metrics[primary], epoch
        state.epoch = epoch
        state.optimizer, state.scheduler = optimizer.state_dict(), scheduler.state_dict()
        steps = Counter(schedule)
        report({"epoch": epoch, "train_loss": train_loss, "train_seconds": seconds,
                "examples_per_s": examples / seconds, **{f"steps/{t}": steps[t] for t in trains}, **metrics,
                "best_metric": state.best_metric, "best_epoch": state.best_epoch}, state)
    return state


def _train_epoch(model, objectives, trains, schedule, settings, optimizer, scheduler, *, epoch, pad_id, on_step):
    model.train()
    torch.manual_seed(settings.seed * 1000 + epoch)
    streams = {task: _task_batches(train.lengths, settings.batch_size, epoch=epoch, seed=settings.seed)
               for task, train in trains.items()}
    total, examples = 0.0, 0
    for step, task in enumerate(schedule):
        index = next(streams[task])
        batch = to_tensors(trains[task], index, pad_id, settings.device)
        loss = train_step(model, lambda b, t=task: model(t, b["input_ids"], b["attention_mask"], b["token_type_ids"]),
                          objectives[task], batch, optimizer, scheduler, settings, epoch=epoch, step=step)
        total += loss * len(index)
        examples += len(index)
        if on_step is not None:
            on_step(len(index))
    return total / max(examples, 1), examples


def _task_batches(lengths: np.ndarray, batch_size: int, *, epoch: int, seed: int) -> Iterator[np.ndarray]:
    """One task's length-bucketed batches for an epoch, pass after pass.

    The first pass is :func:`~raykd.distill.batching.epoch_batches`'s (what ``fit`` would train
    on); temperature sampling may ask a small task for more, and each further pass reshuffles
    with its own seed. ``seed + k * 2**32`` is a distinct ``SeedSequence`` entropy for every
    pass ``k`` (its high word is ``k``) and is ``seed`` itself for the first.
    """
    for k in itertools.count():
        yield from epoch_batches(lengths, batch_size, epoch=epoch, seed=seed + k * 2**32)
