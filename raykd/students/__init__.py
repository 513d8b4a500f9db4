"""Student models: what the teacher is distilled into.

Two families, each a registered word (:data:`raykd.registry.STUDENTS`) and a module of the same
name: ``bilstm`` (Tang et al. 2019) and ``transformer`` (a small BERT). A family module exposes
``PARAMS`` (its settings as :class:`~raykd.domains.ParamSpec`), ``build(params, ctx,
init_from_teacher)`` and ``check_space(domains, teacher_config)``.

Every student maps ``input_ids, attention_mask, token_type_ids`` (each ``LongTensor[B, T]``, the
teacher's WordPiece encoding; pair tasks as one joint ``[CLS] a [SEP] b [SEP]`` encoding) to a
plain ``FloatTensor[B, num_labels]`` of logits (``num_labels == 1`` for regression).

This package imports torch (it is a model package) but never Ray or MLflow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

from torch import nn

from raykd.domains import Fixed, reject_unknown
from raykd.errors import RaykdInputError
from raykd.registry import STUDENTS
from raykd.students.io import load_student, save_student
from raykd.students.params import ParamCount, count_parameters

__all__ = [
    "StudentContext",
    "build_student",
    "student_spec",
    "resolve_params",
    "save_student",
    "load_student",
    "count_parameters",
    "ParamCount",
]


@dataclass(frozen=True)
class StudentContext:
    """What a student needs to know about the task and the teacher.

    Attributes:
        num_labels: output width; 1 for regression.
        is_pair: inputs are sentence pairs in one joint encoding (token_type_ids 0 for a, 1 for b).
        vocab_size: rows of the teacher tokenizer's vocabulary.
        pad_token_id: id of ``[PAD]``.
        max_length: longest input in tokens; a transformer student gets this many positions.
        teacher_path: HF folder or hub id; only needed to initialise weights from the teacher.
        teacher_config: the teacher's ``config.json`` as a dict; filled from ``teacher_path``
            by :func:`build_student` and :func:`student_spec` when omitted.
    """

    num_labels: int
    is_pair: bool
    vocab_size: int
    pad_token_id: int
    max_length: int = 128
    teacher_path: str | None = None
    teacher_config: dict | None = None

    def __post_init__(self) -> None:
        if self.num_labels < 1 or self.vocab_size < 1 or self.max_length < 1:
            raise RaykdInputError(
                f"student context: num_labels ({self.num_labels}), vocab_size ({self.vocab_size}) "
                f"and max_length ({self.max_length}) must all be >= 1"
            )
        if not 0 <= self.pad_token_id < self.vocab_size:
            raise RaykdInputError(
                f"student context: pad_token_id {self.pad_token_id} is outside the vocabulary "
                f"[0, {self.vocab_size}); use the teacher tokenizer's pad id"
            )


def resolve_params(family: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check one family's settings and fill defaults for the omitted ones.

    Raises:
        RaykdInputError: unknown family, unknown key or a value outside its spec.
    """
    specs = STUDENTS.load(family).PARAMS
    where = f"students.{family}"
    reject_unknown(params, specs, where)
    return {
        name: spec.check(params[name], f"{where}.{name}") if name in params else spec.default
        for name, spec in specs.items()
    }


def build_student(
    family: str, params: Mapping[str, Any], ctx: StudentContext, *, init_from_teacher: bool = True
) -> nn.Module:
    """Build a student of ``family`` with ``params`` for the task described by ``ctx``.

    Args:
        family: registered student name (``bilstm``, ``transformer``).
        params: the family's settings; omitted ones take their defaults.
        ctx: task and teacher facts.
        init_from_teacher: False builds the same architecture with random weights (to load a
            checkpoint into, with no teacher at hand).

    Returns:
        The student in training mode, mapping ``[B, T]`` ids to ``[B, num_labels]`` logits.

    Raises:
        RaykdInputError: bad settings, an impossible combination, or a missing teacher.
    """
    module = STUDENTS.load(family)
    resolved = resolve_params(family, params)
    ctx = _with_teacher_config(ctx)
    module.check_space({name: Fixed(value) for name, value in resolved.items()}, ctx.teacher_config)
    return module.build(resolved, ctx, init_from_teacher)


def student_spec(family: str, params: Mapping[str, Any], ctx: StudentContext) -> dict:
    """A JSON-able description from which :func:`build_student` rebuilds the architecture.

    Returns:
        ``{"family": str, "params": {every setting, defaults filled}, "context": {ctx fields}}``.
    """
    return {
        "family": STUDENTS.check(family),
        "params": resolve_params(family, params),
        "context": asdict(_with_teacher_config(ctx)),
    }


def _with_teacher_config(ctx: StudentContext) -> StudentContext:
    """Fill ``teacher_config`` from ``teacher_path`` so a spec can rebuild without the teacher."""
    if ctx.teacher_config is not None or ctx.teacher_path is None:
        return ctx
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(ctx.teacher_path)
    except OSError as err:
        raise RaykdInputError(
            f"students: cannot read the teacher config at {ctx.teacher_path!r} ({err}); "
            "give a Hugging Face model folder"
        ) from err
    return replace(ctx, teacher_config=json.loads(config.to_json_string()))
