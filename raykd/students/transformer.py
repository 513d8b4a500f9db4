"""Transformer student: a small BERT (``transformers.BertModel``) with a BERT classification head.

Architecture: BERT embeddings (``max_position_embeddings = ctx.max_length``, fewer parameters than
the teacher's 512) -> ``num_layers`` encoder layers -> BERT pooler (tanh of a linear map of the
``[CLS]`` state) -> dropout -> ``Linear(hidden -> num_labels)``. The module names (``bert``,
``classifier``) follow ``BertForSequenceClassification``.

Initialisation (``init``):
- ``random``: BERT's own initialisation; ``hidden_size``, ``num_heads`` and ``ffn_dim`` apply.
- ``teacher_first`` / ``teacher_last`` / ``teacher_skip``: the widths come from the teacher (a BERT
  model), and the student copies the teacher's embeddings (word, the first ``max_length``
  positions, token type, LayerNorm), the chosen encoder layers, the pooler and, when its shape
  matches ``num_labels``, the classifier. ``first`` takes teacher layers ``0..k-1`` and ``last``
  takes ``L-k..L-1``. ``skip`` takes every ``(L/k)``-th layer ending at the top one, 0-based
  ``floor((i+1)*L/k) - 1`` for ``i < k`` (PKD-Skip's choice of teacher layers {2, 4, ..., 12} for a
  12-layer teacher and 6 layers, Sun et al. 2019, arXiv 1908.09355; PKD itself initialises its
  student from the first k layers and uses the skipped layers as hint targets). For a 6-layer
  teacher and k = 3 that is layers 1, 3, 5; see :func:`teacher_layers`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from raykd.domains import Domain, Fixed, ParamSpec, Range, domain_values
from raykd.errors import RaykdInputError

__all__ = ["PARAMS", "TransformerStudent", "build", "check_space", "active", "teacher_layers", "bert_config"]

INITS = ("random", "teacher_first", "teacher_last", "teacher_skip")
# Teacher config keys a teacher-initialised student inherits (the rest is set by the student).
_TEACHER_KEYS = (
    "hidden_size", "num_attention_heads", "intermediate_size", "hidden_act", "layer_norm_eps",
    "type_vocab_size", "initializer_range",
)

PARAMS: dict[str, ParamSpec] = {
    "num_layers": ParamSpec(int, 2, "encoder layers", low=1),
    "init": ParamSpec(
        str, "random", "random weights, or copy the teacher's first, last or evenly spaced (skip) layers",
        choices=INITS,
    ),
    "hidden_size": ParamSpec(int, 256, "hidden width (random init only; teacher init uses the teacher's)", low=1),
    "num_heads": ParamSpec(int, 4, "attention heads (random init only)", low=1),
    "ffn_dim": ParamSpec(int, 1024, "feed-forward width (random init only)", low=1),
    "dropout": ParamSpec(
        float, 0.1, "dropout on hidden states, attention weights and the head",
        low=0.0, high=1.0, high_open=True,
    ),
    "freeze_embeddings": ParamSpec(bool, False, "keep the word embeddings fixed during training"),
}


_WIDTH_KEYS = ("hidden_size", "num_heads", "ffn_dim")


def active(chosen: dict) -> set[str]:
    """The settings that exist given those chosen so far (``init`` is chosen first).

    A sweep samples the width settings only for random initialisation; with teacher init they
    come from the teacher, and sampling them would only add noise to the search.
    """
    if chosen.get("init", PARAMS["init"].default) == "random":
        return set(PARAMS)
    return set(PARAMS) - set(_WIDTH_KEYS)


class TransformerStudent(nn.Module):
    """BERT encoder + pooler + dropout + linear classifier, returning plain logits.

    Args:
        config: a ``transformers.BertConfig`` (see :func:`bert_config`).
        num_labels: output width (1 for regression).
    """

    def __init__(self, config, num_labels: int):
        from transformers import BertModel

        super().__init__()
        self.config = config
        self.bert = BertModel(config, add_pooling_layer=True)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, num_labels)
        nn.init.normal_(self.classifier.weight, std=config.initializer_range)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, input_ids: Tensor | None, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                inputs_embeds: Tensor | None = None, return_features: bool = False):
        """Map ``[B, T]`` ids (``T <= max_length``), mask and token types to ``[B, num_labels]`` logits.

        Args:
            input_ids: ``[B, T]`` WordPiece ids; None when ``inputs_embeds`` is given.
            attention_mask, token_type_ids: ``[B, T]``.
            inputs_embeds: ``[B, T, hidden_size]`` raw word vectors used instead of looking up
                ``input_ids`` (BERT still adds position and type embeddings and LayerNorm).
            return_features: also return the pooled ``[CLS]`` features ``[B, hidden_size]``.
        """
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        inputs_embeds=inputs_embeds)
        logits = self.classifier(self.dropout(out.pooler_output))
        return (logits, out.pooler_output) if return_features else logits

    @property
    def embedding(self) -> nn.Embedding:
        """The word-embedding table ``[vocab, hidden_size]``."""
        return self.bert.embeddings.word_embeddings

    @property
    def feature_dim(self) -> int:
        """Width of the pooled features."""
        return self.config.hidden_size


def teacher_layers(init: str, num_layers: int, teacher_num_layers: int) -> list[int]:
    """0-based teacher layers copied into the student's layers ``0..num_layers-1``.

    Raises:
        ValueError: ``init`` is not a teacher init, or ``num_layers`` is out of ``1..teacher_num_layers``.
    """
    k, total = num_layers, teacher_num_layers
    if not 1 <= k <= total:
        raise ValueError(f"num_layers must be in 1..{total}, got {k}")
    if init == "teacher_first":
        return list(range(k))
    if init == "teacher_last":
        return list(range(total - k, total))
    if init == "teacher_skip":
        return [(i + 1) * total // k - 1 for i in range(k)]
    raise ValueError(f"not a teacher init: {init!r}")


def bert_config(params: dict, ctx):
    """The student's ``BertConfig``: widths from ``params`` (random init) or the teacher config."""
    from transformers import BertConfig

    common = dict(
        vocab_size=ctx.vocab_size, num_hidden_layers=params["num_layers"],
        max_position_embeddings=ctx.max_length, pad_token_id=ctx.pad_token_id,
        hidden_dropout_prob=params["dropout"], attention_probs_dropout_prob=params["dropout"],
    )
    if params["init"] == "random":
        return BertConfig(
            hidden_size=params["hidden_size"], num_attention_heads=params["num_heads"],
            intermediate_size=params["ffn_dim"], type_vocab_size=2, **common,
        )
    teacher = _require_teacher_config(ctx.teacher_config, params["init"])
    return BertConfig(**{k: teacher[k] for k in _TEACHER_KEYS if k in teacher}, **common)


def build(params: dict, ctx, init_from_teacher: bool = True) -> TransformerStudent:
    """Build a :class:`TransformerStudent`; copy teacher weights for ``teacher_*`` inits.

    Raises:
        RaykdInputError: teacher init without a teacher, a non-BERT teacher, or ``max_length``
            beyond the teacher's positions.
    """
    model = TransformerStudent(bert_config(params, ctx), ctx.num_labels)
    if init_from_teacher and params["init"] != "random":
        if ctx.teacher_path is None:
            raise RaykdInputError(
                f"students.transformer: init {params['init']} needs a teacher path; give a teacher or use init random"
            )
        _copy_from_teacher(model, params, ctx)
    model.bert.embeddings.word_embeddings.weight.requires_grad_(not params["freeze_embeddings"])
    return model


def _copy_from_teacher(model: TransformerStudent, params: dict, ctx) -> None:
    from transformers import AutoModelForSequenceClassification

    teacher, info = AutoModelForSequenceClassification.from_pretrained(
        ctx.teacher_path, dtype=torch.float32, output_loading_info=True
    )
    missing = set(info["missing_keys"])  # keys the checkpoint lacks (e.g. a head-less encoder)
    t_bert, s_bert = teacher.base_model, model.bert
    t_emb, s_emb = t_bert.embeddings, s_bert.embeddings
    if t_emb.position_embeddings.weight.shape[0] < ctx.max_length:
        raise RaykdInputError(
            f"students.transformer: max_length {ctx.max_length} exceeds the teacher's "
            f"{t_emb.position_embeddings.weight.shape[0]} positions; lower max_length"
        )
    if t_emb.word_embeddings.weight.shape[0] < ctx.vocab_size:
        raise RaykdInputError(
            f"students.transformer: the teacher has {t_emb.word_embeddings.weight.shape[0]} word embeddings "
            f"but the vocabulary has {ctx.vocab_size}; use the teacher's own tokenizer"
        )
    layers = teacher_layers(params["init"], params["num_layers"], len(t_bert.encoder.layer))
    with torch.no_grad():
        s_emb.word_embeddings.weight.copy_(t_emb.word_embeddings.weight[: ctx.vocab_size])
        s_emb.position_embeddings.weight.copy_(t_emb.position_embeddings.weight[: ctx.max_length])
        s_emb.token_type_embeddings.weight.copy_(t_emb.token_type_embeddings.weight)
        s_emb.LayerNorm.load_state_dict(t_emb.LayerNorm.state_dict())
        for student_layer, index in zip(s_bert.encoder.layer, layers):
            student_layer.load_state_dict(t_bert.encoder.layer[index].state_dict())
        if t_bert.pooler is not None and not any(".pooler." in key for key in missing):
            s_bert.pooler.load_state_dict(t_bert.pooler.state_dict())
        head = getattr(teacher, "classifier", None)
        if (
            isinstance(head, nn.Linear)
            and head.weight.shape == model.classifier.weight.shape
            and not any(key.startswith("classifier.") for key in missing)
        ):
            model.classifier.load_state_dict(head.state_dict())


def check_space(domains: dict[str, Domain], teacher_config: dict | None) -> None:
    """Refuse settings no trial could build.

    Raises:
        RaykdInputError: a ``hidden_size`` not divisible by a ``num_heads`` (random init); a teacher
            init without a teacher config, with a non-BERT teacher, or with more layers than the
            teacher has.
    """
    def values(name: str) -> tuple:
        return domain_values(domains.get(name, Fixed(PARAMS[name].default)))

    inits = values("init")
    if "random" in inits:
        for hidden in _int_values(domains.get("hidden_size", Fixed(PARAMS["hidden_size"].default))):
            for heads in _int_values(domains.get("num_heads", Fixed(PARAMS["num_heads"].default))):
                if hidden % heads:
                    raise RaykdInputError(
                        f"students.transformer: hidden_size {hidden} is not divisible by num_heads {heads}; "
                        "choose sizes that are multiples of every head count"
                    )
    for init in (i for i in inits if i != "random"):
        teacher = _require_teacher_config(teacher_config, init)
        most = int(max(values("num_layers")))
        if most > teacher["num_hidden_layers"]:
            raise RaykdInputError(
                f"students.transformer: num_layers {most} exceeds the teacher's {teacher['num_hidden_layers']} "
                f"layers, so init {init} cannot copy them; choose num_layers <= {teacher['num_hidden_layers']} or init random"
            )


def _require_teacher_config(teacher_config: dict | None, init: str) -> dict:
    if teacher_config is None:
        raise RaykdInputError(
            f"students.transformer: init {init} copies teacher layers but no teacher is known; "
            "give a teacher or use init random"
        )
    if teacher_config.get("model_type") != "bert":
        raise RaykdInputError(
            f"students.transformer: init {init} needs a BERT teacher, got model_type "
            f"{teacher_config.get('model_type')!r}; use init random"
        )
    return teacher_config


def _int_values(domain: Domain) -> list[int]:
    """Every integer a domain can produce (a range is enumerated with its step)."""
    if isinstance(domain, Range):
        return list(range(int(domain.low), int(domain.high) + 1, int(domain.step or 1)))
    return [int(v) for v in domain_values(domain)]
