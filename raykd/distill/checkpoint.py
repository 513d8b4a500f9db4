"""Student checkpoints: weights as safetensors, architecture as JSON, loop state for resuming.

A checkpoint folder holds ``student.safetensors`` + ``student.json`` (see
:mod:`raykd.students.io`; enough to rebuild and run the student without the teacher),
``train_state.pt`` (optimiser, scheduler, epoch counters) and ``metrics.json`` (the epoch's
dev metrics).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from raykd.distill.loop import LoopState
from raykd.students.io import load_student, save_student

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(directory: str | Path, model: nn.Module, spec: dict, state: LoopState, metrics: dict) -> Path:
    """Write a checkpoint folder (created if needed) and return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_student(getattr(model, "module", model), spec, directory)
    torch.save(asdict(state), directory / "train_state.pt")
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    return directory


def load_checkpoint(directory: str | Path) -> tuple[nn.Module, LoopState]:
    """Read a checkpoint folder: the student (eval mode) and the loop state to resume from."""
    directory = Path(directory)
    state = LoopState(**torch.load(directory / "train_state.pt", weights_only=False))
    return load_student(directory), state
