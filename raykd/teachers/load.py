"""Find, check and load a teacher: any Hugging Face sequence-classification folder or hub id.

:func:`inspect_teacher` reads only the teacher's configuration (no weights, no torch), so a
search space can be checked in a second before Ray starts; :func:`load_teacher` loads weights.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raykd.data.tasks import TaskSpec
from raykd.errors import RaykdInputError

__all__ = ["TeacherInfo", "inspect_teacher", "check_teacher_labels", "load_teacher", "load_tokenizer", "teacher_as_student"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_GENERIC_LABEL = re.compile(r"^label_?\d+$", re.IGNORECASE)


@dataclass(frozen=True)
class TeacherInfo:
    """What raykd needs to know about a teacher before loading its weights.

    Attributes:
        path: the folder (absolute) or hub id.
        config: the model's ``config.json`` as a dict.
        num_labels: outputs of the classification head (1 for regression).
        label_names: ``id2label`` names in id order.
    """

    path: str
    config: dict[str, Any]
    num_labels: int
    label_names: tuple[str, ...]

    @property
    def has_named_labels(self) -> bool:
        """False when the labels are the generic ``LABEL_0``, ``LABEL_1``, ..."""
        return not all(_GENERIC_LABEL.match(name) for name in self.label_names)


def inspect_teacher(path: str) -> TeacherInfo:
    """Read a teacher's configuration.

    Args:
        path: a model folder (``config.json`` + weights) or a Hugging Face hub id.

    Raises:
        RaykdInputError: the folder is not a model folder, or a hub id cannot be fetched.
    """
    local = Path(path).expanduser()
    if local.exists():
        config_file = local / "config.json"
        if not local.is_dir() or not config_file.is_file():
            raise RaykdInputError(
                f"teacher.path {path} is not a Hugging Face model folder (no config.json); "
                "give a folder written by save_pretrained() or a hub id"
            )
        config = json.loads(config_file.read_text())
        resolved = str(local.resolve())
    elif _HUB_ID.match(path) and not path.startswith("."):
        config, resolved = _hub_config(path), path
    else:
        raise RaykdInputError(f"teacher.path {path} does not exist; give a model folder or a hub id")
    id2label = config.get("id2label") or {}
    num_labels = int(config.get("num_labels", len(id2label) or 2))
    names = tuple(str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(num_labels))
    return TeacherInfo(path=resolved, config=config, num_labels=num_labels, label_names=names)


def _hub_config(model_id: str) -> dict[str, Any]:
    try:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(model_id).to_dict()
    except Exception as err:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise RaykdInputError(
            f"teacher.path '{model_id}' is not a local folder and could not be fetched from the "
            f"Hugging Face hub ({type(err).__name__}); give a model folder"
        ) from None


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def check_teacher_labels(info: TeacherInfo, task: TaskSpec) -> None:
    """Refuse a teacher whose head does not match the task.

    Label names are compared by id when the teacher names its labels; a name matches the task's
    label name or its raw value in the data files (``0``/``1`` for SST-2).

    Raises:
        RaykdInputError: label count or names differ.
    """
    fix = f"fine-tune a teacher for {task.name} with `raykd teacher fine-tune` or fix id2label in its config.json"
    if info.num_labels != task.num_labels:
        kind = "a regression head with 1 output" if task.is_regression else f"{task.num_labels} labels"
        raise RaykdInputError(
            f"teacher {info.path} has {info.num_labels} labels but task {task.name} needs {kind}; {fix}"
        )
    if task.is_regression or not info.has_named_labels:
        return
    for i, name in enumerate(info.label_names):
        if _norm(name) not in {_norm(task.label_names[i]), _norm(task.label_values[i])}:
            raise RaykdInputError(
                f"teacher {info.path} labels {list(info.label_names)} do not match task {task.name} "
                f"labels {list(task.label_names)} (label {i}: '{name}'); {fix}"
            )


def load_teacher(path: str, device: str = "cpu"):
    """Load the teacher's weights in eval mode.

    Returns:
        A ``transformers`` sequence classifier; ``model(**batch).logits`` is ``[B, num_labels]``.
    """
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path)
    return model.to(device).eval()


def load_tokenizer(path: str):
    """The teacher's tokenizer (fast, Rust-backed, when the folder has ``tokenizer.json``)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def teacher_as_student(model):
    """Wrap a Hugging Face classifier in raykd's student call convention.

    Returns:
        A module with ``forward(input_ids, attention_mask, token_type_ids) -> logits [B, C]``,
        so the teacher can be fine-tuned by the distillation loop and timed like a student.
    """
    import inspect

    from torch import nn

    accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters

    class _Adapter(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            extra = {"token_type_ids": token_type_ids} if accepts_types and token_type_ids is not None else {}
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    return _Adapter()
