"""Student checkpoints: weights as safetensors, architecture as JSON, loop state for resuming.

A checkpoint folder holds ``student.safetensors`` + ``student.json`` (see
:mod:`raykd.students.io`; enough to rebuild and run the student without the teacher),
``train_state.json`` + ``train_state.safetensors`` (the :class:`LoopState`: epoch counters, best
metric, optimiser and scheduler state, a data-free trainer's state; see
:mod:`raykd.distill.state_io`) and ``metrics.json`` (the epoch's dev metrics).

Nothing in a folder is unpickled, so loading one runs no code from it. A folder from an older
raykd, whose loop state is a pickled ``train_state.pt``, is refused rather than read.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

from safetensors import SafetensorError
from torch import nn

from raykd.distill.loop import LoopState
from raykd.distill.state_io import load_state_tree, save_state_tree
from raykd.errors import RaykdInputError
from raykd.students.io import load_student, save_student

__all__ = ["LEGACY_TRAIN_STATE", "TRAIN_STATE_FILES", "TRAIN_STATE_JSON", "TRAIN_STATE_TENSORS", "load_checkpoint",
           "save_checkpoint"]

TRAIN_STATE_JSON = "train_state.json"
TRAIN_STATE_TENSORS = "train_state.safetensors"
TRAIN_STATE_FILES = (TRAIN_STATE_JSON, TRAIN_STATE_TENSORS)
"""The loop state's files: what resuming needs and a deployed student does not."""
LEGACY_TRAIN_STATE = "train_state.pt"
"""The pickled loop state of raykd before this format; never opened."""


def save_checkpoint(directory: str | Path, model: nn.Module, spec: dict, state: LoopState, metrics: dict) -> Path:
    """Write a checkpoint folder (created if needed) and return it.

    Raises:
        TypeError: the loop state holds a value :mod:`raykd.distill.state_io` cannot store.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_student(getattr(model, "module", model), spec, directory)
    # fields one level deep, not dataclasses.asdict: that deep-copies every tensor and rebuilds each
    # state_dict() without its _metadata (the module versions load_state_dict reads)
    tree = {f.name: getattr(state, f.name) for f in fields(state)}
    save_state_tree(tree, directory / TRAIN_STATE_JSON, directory / TRAIN_STATE_TENSORS)
    (directory / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    return directory


def load_checkpoint(directory: str | Path) -> tuple[nn.Module, LoopState]:
    """Read a checkpoint folder: the student (eval mode) and the loop state to resume from.

    Raises:
        RaykdInputError: the folder has no loop state, only a pickled ``train_state.pt`` (not
            loaded: unpickling could run code), or a loop state that does not parse.
    """
    directory = Path(directory)
    if not all((directory / name).is_file() for name in TRAIN_STATE_FILES):
        if (directory / LEGACY_TRAIN_STATE).exists():
            raise RaykdInputError(
                f"{directory} holds {LEGACY_TRAIN_STATE}, a pickled training state from an older raykd; it is "
                "not loaded because unpickling can run code. Start the sweep again to train afresh; the "
                "student itself (student.safetensors + student.json) still loads with raykd.students.io.load_student")
        raise RaykdInputError(f"{directory} has no {TRAIN_STATE_JSON} and {TRAIN_STATE_TENSORS}; "
                              "point at a checkpoint folder written by save_checkpoint")
    try:
        tree = load_state_tree(directory / TRAIN_STATE_JSON, directory / TRAIN_STATE_TENSORS)
        known = {f.name for f in fields(LoopState)}
        if not isinstance(tree, dict) or not set(tree) <= known:
            raise ValueError(f"expected the fields {sorted(known)}")
        state = LoopState(**tree)
    except (ValueError, TypeError, OSError, SafetensorError) as err:  # a damaged or foreign folder
        raise RaykdInputError(f"{directory}: {TRAIN_STATE_JSON} + {TRAIN_STATE_TENSORS} are not a readable loop "
                              f"state ({err})") from err
    return load_student(directory), state
