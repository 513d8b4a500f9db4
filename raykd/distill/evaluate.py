"""Evaluate a student: dev metrics (scikit-learn/scipy, via raykd.data.metrics) and CPU latency."""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from torch import nn

from raykd.data.encoding import EncodedSplit
from raykd.data.metrics import compute_metrics
from raykd.data.tasks import TaskSpec
from raykd.distill.batching import to_tensors

__all__ = ["predict", "evaluate_splits", "measure_latency"]


@torch.inference_mode()
def predict(model: nn.Module, split: EncodedSplit, pad_id: int, batch_size: int = 256, device="cpu") -> np.ndarray:
    """Student outputs for a whole split, in its order.

    Returns:
        float32 ``[N, C]`` logits (``[N, 1]`` scores for regression).
    """
    was_training = model.training
    model.eval()
    order = np.argsort(split.lengths, kind="stable")
    out = None
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        batch = to_tensors(split, index, pad_id, device)
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(split), logits.shape[1]), dtype=np.float32)
        out[index] = logits
    model.train(was_training)
    return out


def evaluate_splits(model: nn.Module, splits: dict[str, EncodedSplit], task: TaskSpec, pad_id: int,
                    device="cpu") -> dict[str, float]:
    """Task metrics on each eval split.

    The first split's metrics keep their names (``accuracy``); the others get the split name as a
    suffix (MNLI: ``accuracy_dev_mismatched``).
    """
    metrics: dict[str, float] = {}
    for i, (name, split) in enumerate(splits.items()):
        values = compute_metrics(task, predict(model, split, pad_id, device=device), split.labels)
        metrics.update({(k if i == 0 else f"{k}_{name}"): float(v) for k, v in values.items()})
    return metrics


@torch.inference_mode()
def measure_latency(model: nn.Module, split: EncodedSplit, pad_id: int, *, examples: int = 100,
                    warmup: int = 10, threads: int = 1, seed: int = 0) -> float:
    """Median CPU latency of one example at batch size 1, in milliseconds.

    Runs ``warmup`` untimed forwards, then times ``examples`` real examples drawn from ``split``
    (so lengths follow the task's distribution). Tokenisation is excluded. The model is moved to
    the CPU (in place) and run with ``threads`` torch threads (default 1, comparable across trials).
    """
    model = model.to("cpu").eval()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(split), size=min(examples + warmup, len(split)), replace=len(split) < examples + warmup)
        times = []
        for i, index in enumerate(picks):
            batch = to_tensors(split, np.array([index]), pad_id)
            started = time.perf_counter()
            model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            if i >= warmup:
                times.append(time.perf_counter() - started)
        return 1000.0 * statistics.median(times)
    finally:
        torch.set_num_threads(previous)
