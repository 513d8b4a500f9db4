"""Length-bucketed batches: shuffled every epoch, little padding, equal step counts across ranks.

Sentence lengths in GLUE vary a lot (SST-2: mean 13, max 66 tokens), so random batches are mostly
padding. Like Hugging Face's ``group_by_length``, each epoch shuffles the examples, sorts them by
length inside chunks of ``50 * batch_size``, cuts batches, and shuffles the batches. Under DDP each
rank takes every ``world_size``-th batch and all ranks get the same number of steps.
"""

from __future__ import annotations

import numpy as np

from raykd.data.encoding import EncodedSplit

__all__ = ["epoch_batches", "to_tensors"]

_CHUNK = 50


def epoch_batches(lengths: np.ndarray, batch_size: int, *, epoch: int, seed: int,
                  rank: int = 0, world_size: int = 1) -> list[np.ndarray]:
    """Index batches for one epoch on one rank.

    Args:
        lengths: int ``[N]`` tokens per example.
        batch_size: examples per batch on this rank.
        epoch, seed: the shuffle is a function of both, identical on every rank.
        rank, world_size: this worker's place in data-parallel training.

    Returns:
        ``steps`` arrays of example indices, the same ``steps`` on every rank.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    chunk = batch_size * _CHUNK
    batches = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    batches = [batches[i] for i in rng.permutation(len(batches))]
    steps = len(batches) // world_size if world_size > 1 else len(batches)
    return batches[rank::world_size][:steps]


def to_tensors(split: EncodedSplit, index: np.ndarray, pad_id: int, device="cpu") -> dict:
    """Padded model inputs plus ``labels`` and ``teacher_logits`` (when cached) as torch tensors.

    Returns:
        ``input_ids``, ``attention_mask``, ``token_type_ids``: long ``[B, T]``; ``labels``: ``[B]``;
        ``teacher_logits``: float ``[B, C]``.
    """
    import torch

    batch = {k: torch.from_numpy(v) for k, v in split.padded(index, pad_id).items()}
    batch["labels"] = torch.from_numpy(np.asarray(split.labels[index]))
    if split.teacher_logits is not None:
        batch["teacher_logits"] = torch.from_numpy(split.teacher_logits[index])
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
