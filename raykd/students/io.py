"""Save a student to a folder and load it back without the teacher.

A student folder holds ``student.safetensors`` (the state dict) and ``student.json`` (the spec
from :func:`raykd.students.student_spec`: family, settings and context), which is enough to
rebuild the architecture with ``init_from_teacher=False`` before loading the weights.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from raykd.errors import RaykdInputError

__all__ = ["WEIGHTS_FILE", "SPEC_FILE", "save_student", "load_student"]

WEIGHTS_FILE = "student.safetensors"
SPEC_FILE = "student.json"


def save_student(model: nn.Module, spec: dict, directory: str | Path) -> None:
    """Write ``model``'s weights and ``spec`` into ``directory`` (created if missing).

    A ``DistributedDataParallel``/``DataParallel`` wrapper is unwrapped first, so the saved keys
    are those of the bare student.
    """
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        model = model.module
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_model(model, str(directory / WEIGHTS_FILE), metadata={"family": str(spec.get("family"))})
    (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")


def load_student(directory: str | Path) -> nn.Module:
    """Rebuild the student saved in ``directory``, load its weights and return it in eval mode.

    Raises:
        RaykdInputError: the folder lacks ``student.json`` or ``student.safetensors``.
    """
    from raykd.students import StudentContext, build_student  # the package imports this module

    directory = Path(directory)
    for name in (SPEC_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise RaykdInputError(
                f"{directory} has no {name}; point at a folder written by save_student"
            )
    spec = json.loads((directory / SPEC_FILE).read_text())
    ctx = StudentContext(**spec["context"])
    model = build_student(spec["family"], spec["params"], ctx, init_from_teacher=False)
    load_model(model, str(directory / WEIGHTS_FILE))
    return model.eval()
