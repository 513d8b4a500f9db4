"""The two kinds of generator and the learning rate each gets by default (no torch, no other raykd module).

``scratch`` is a small GPT-2-shaped model trained from random weights on the training text; any
other ``generator`` value is a pretrained causal LM (a folder or hub id) that is fine-tuned on it.
Both :mod:`raykd.transfer.generate` (the generator) and :mod:`raykd.transfer.generators` (its
cache) read these, so neither has to import the other at import time.
"""

from __future__ import annotations

__all__ = ["SCRATCH", "SCRATCH_LR", "PRETRAINED_LR", "default_lr"]

SCRATCH = "scratch"
"""The ``generator`` value of a GPT-2-shaped model trained from random weights."""

SCRATCH_LR = 1e-3
"""Peak learning rate of a generator trained from scratch."""

PRETRAINED_LR = 5e-5
"""Peak learning rate of a pretrained causal LM being fine-tuned (d-bert's GPT-2 value)."""


def default_lr(path: str) -> float:
    """The learning rate a generator gets when none is given: :data:`SCRATCH_LR` or :data:`PRETRAINED_LR`."""
    return SCRATCH_LR if path == SCRATCH else PRETRAINED_LR
