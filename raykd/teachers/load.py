"""Find, check and load a teacher: any Hugging Face sequence-classification folder or hub id.

:func:`inspect_teacher` reads the teacher's configuration and checks that the folder holds what a
teacher needs (readable weights, tokenizer files) without loading weights or importing torch, so a
search space is checked in a second before Ray starts. :func:`load_checked_teacher` loads the
weights and refuses a model whose classification head is not in them (transformers would
initialise it at random); :func:`load_teacher` loads weights already checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raykd.data.tasks import TaskSpec
from raykd.errors import RaykdInputError

__all__ = ["TeacherInfo", "inspect_teacher", "check_teacher_labels", "load_teacher", "load_tokenizer",
           "load_checked_teacher", "teacher_as_student"]

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_OTHER_FRAMEWORKS = ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                    "tokenizer.model")
MIN_VOCABULARY = 100
"""Fewer tokens than this is not a real vocabulary (transformers builds a 5-token one from no files)."""

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


def inspect_teacher(path: str, role: str = "teacher.path") -> TeacherInfo:
    """Read a teacher's configuration and check its folder's files (no weights are loaded).

    Args:
        path: a model folder (``config.json``, weights, tokenizer files) or a Hugging Face hub id.
        role: the setting that named it, for messages (``teacher.path``, ``teacher.base``).

    Raises:
        RaykdInputError: the folder is not a model folder, its config.json is not valid, it has
            no PyTorch weights or truncated ones, no tokenizer files, or a hub id cannot be fetched.
    """
    local = Path(path).expanduser()
    if local.exists():
        config_file = local / "config.json"
        if not local.is_dir() or not config_file.is_file():
            raise RaykdInputError(
                f"{role} {path} is not a Hugging Face model folder (no config.json); "
                "give a folder written by save_pretrained() or a hub id"
            )
        config = _read_config(config_file, role)
        _check_weights(local, role)
        _check_tokenizer_files(local, role)
        resolved = str(local.resolve())
    elif _HUB_ID.match(path) and not path.startswith("."):
        config, resolved = _hub_config(path), path
    else:
        raise RaykdInputError(f"{role} {path} does not exist; give a model folder or a hub id")
    id2label = config.get("id2label") or {}
    try:
        num_labels = int(config.get("num_labels", len(id2label) or 2))
        names = tuple(str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(num_labels))
    except (TypeError, ValueError, AttributeError):
        raise RaykdInputError(f"{role} {path}: config.json has a malformed num_labels / id2label "
                              f"({config.get('num_labels')!r}, {id2label!r}); fix it or save the model again") from None
    if num_labels < 1:
        raise RaykdInputError(f"{role} {path}: config.json says num_labels {num_labels}; a classifier has >= 1 output")
    return TeacherInfo(path=resolved, config=config, num_labels=num_labels, label_names=names)


def _read_config(config_file: Path, role: str) -> dict[str, Any]:
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise RaykdInputError(f"{role}: {config_file} is not valid JSON ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:120]}); restore it or save the model again") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise RaykdInputError(f"{role}: {config_file} has no model_type, so transformers cannot build the model; "
                              "save the model again with save_pretrained()")
    for key in ("vocab_size", "hidden_size"):
        if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool) or config[key] < 1):
            raise RaykdInputError(f"{role}: {config_file} has {key} {config[key]!r}; it must be a positive integer")
    return config


def _check_weights(folder: Path, role: str) -> None:
    """The folder has PyTorch weights, and each safetensors file's header is whole (a truncated file is refused)."""
    present = [name for name in _WEIGHT_FILES if (folder / name).is_file()]
    if not present:
        other = [name for name in _OTHER_FRAMEWORKS if (folder / name).is_file()]
        what = f"only {', '.join(other)} (not PyTorch)" if other else "no weights"
        raise RaykdInputError(f"{role} {folder} has config.json but {what}; it needs model.safetensors or "
                              "pytorch_model.bin: copy the weights in or save the model again with save_pretrained()")
    files = []
    for name in present:
        if name.endswith(".index.json"):
            try:
                shards = sorted(set(json.loads((folder / name).read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise RaykdInputError(f"{role}: {folder / name} is not a valid weight index; save the model again") from None
            missing = [shard for shard in shards if not (folder / shard).is_file()]
            if missing:
                raise RaykdInputError(f"{role} {folder}: weight shard {missing[0]} listed in {name} is missing; "
                                      "copy every shard")
            files += [folder / shard for shard in shards]
        else:
            files.append(folder / name)
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(file), framework="numpy"):
                    pass
            except (SafetensorError, OSError) as err:
                raise RaykdInputError(f"{role}: {file} is damaged or truncated ({' '.join(str(err).split())[:120]}); "
                                      "copy it again") from None
        elif file.suffix == ".bin":
            import zipfile

            if not zipfile.is_zipfile(file):
                raise RaykdInputError(f"{role}: {file} is damaged or truncated (not a complete PyTorch zip archive); "
                                      "copy it again")


def _check_tokenizer_files(folder: Path, role: str) -> None:
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise RaykdInputError(f"{role} {folder} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, ...): "
                              "transformers would build a 5-token vocabulary and every text would become [UNK]; "
                              "copy its base model's tokenizer files in (tokenizer.save_pretrained(folder))")


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
        RaykdInputError: label count or names differ; for the user's own task the message shows the
            ``data.labels`` mapping to write, or how to fine-tune a teacher on the data.
    """
    from raykd.data.tasks import GLUE_TASKS, example_mapping

    if task.name in GLUE_TASKS:
        fix = f"fine-tune a teacher for {task.name} with `raykd teacher fine-tune` or fix id2label in its config.json"
    else:
        fix = ("fine-tune a teacher on your data with teacher: {base: <encoder>, fine_tune: true} "
               "(or raykd teacher fine-tune --train ... --dev ...)")
    if info.num_labels != task.num_labels:
        kind = "a regression head with 1 output" if task.is_regression else f"{task.num_labels} labels"
        raise RaykdInputError(
            f"teacher {info.path} has {info.num_labels} labels but task {task.name} needs {kind}; {fix}"
        )
    if task.is_regression or not info.has_named_labels:
        return
    for i, name in enumerate(info.label_names):
        if _norm(name) not in {_norm(task.label_names[i]), _norm(task.label_values[i])}:
            mapping = "" if task.name in GLUE_TASKS else (
                f"; if your values mean the teacher's labels, map them: data.labels: "
                f"{example_mapping(list(task.label_values), info.label_names)}")
            raise RaykdInputError(
                f"teacher {info.path} labels {list(info.label_names)} do not match task {task.name} "
                f"labels {list(task.label_names)} (label {i}: '{name}'){mapping}; or {fix}"
                if mapping else
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


def load_checked_teacher(path: str, device: str = "cpu", role: str = "teacher.path"):
    """Load a teacher and its tokenizer, refusing one that cannot teach.

    Returns:
        ``(model, tokenizer)``: the classifier in eval mode and the tokenizer.

    Raises:
        RaykdInputError: the weights cannot be loaded, the classification head (or any other
            weight) is missing from them, so transformers initialised it at random (a base encoder
            given as a teacher), or the tokenizer has fewer than :data:`MIN_VOCABULARY` tokens or ids
            beyond the model's embedding table.
    """
    from transformers import AutoModelForSequenceClassification

    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True)
    except (OSError, ValueError, RuntimeError, KeyError) as err:
        raise RaykdInputError(f"{role} {path}: the weights cannot be loaded ({type(err).__name__}: "
                              f"{' '.join(str(err).split())[:160]}); copy the folder again or save it with "
                              "save_pretrained()") from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise RaykdInputError(f"{role} {path} has no trained classification head: {shown} are not in its weights, so "
                              "transformers would initialise them at random; give a fine-tuned teacher, or fine-tune "
                              "this encoder with teacher: {base: <it>, fine_tune: true}")
    tokenizer = load_tokenizer(path)
    vocab = int(model.config.vocab_size)
    if len(tokenizer) < MIN_VOCABULARY:
        raise RaykdInputError(f"{role} {path}: its tokenizer has only {len(tokenizer)} tokens (its files are missing or "
                              "empty); copy its base model's tokenizer files in")
    if len(tokenizer) > vocab:
        raise RaykdInputError(f"{role} {path}: its tokenizer has {len(tokenizer):,} tokens but the model's embedding "
                              f"table only {vocab:,} rows; it is another model's tokenizer: copy the right one in")
    return model.to(device).eval(), tokenizer


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
