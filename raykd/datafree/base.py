"""What data-free methods share: the environment a trainer runs in and the trainer protocol.

A data-free method (``zero_shot``, ``as_dfd``, ``random_tokens``) never sees the task's training
text. Its module under :mod:`raykd.methods` exposes ``PARAMS``, ``USES_TASK_TRAIN_DATA = False``,
optionally ``active(chosen)`` and ``check_space(domains, teacher_config)``, and
``make_trainer(params, env, student) -> DataFreeTrainer``. :func:`raykd.datafree.loop.fit_data_free`
drives the trainer: before every student step it calls ``generator_steps`` (the trainer keeps its
own ``gen_steps:student_steps`` schedule), then ``student_loss``, then steps the student's
optimiser (AdamW, warm-up and decay, gradient clipping, as for ``vanilla``).

Shapes: ``B`` batch, ``T`` tokens, ``V`` vocabulary rows, ``H`` the teacher's hidden width, ``E``
the student's word-embedding width, ``C`` labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from raykd.data.encoding import EncodedSplit
from raykd.data.tasks import TaskSpec

__all__ = ["DataFreeEnv", "DataFreeTrainer", "teacher_logits_from_embeds", "freeze"]


@dataclass
class DataFreeEnv:
    """Everything a data-free trainer may use. Never holds the task's training split.

    Attributes:
        teacher: the fine-tuned teacher (``*ForSequenceClassification``), frozen, in ``eval()``.
        teacher_embeddings: ``[V, H]`` the teacher's raw word-embedding matrix (no grad).
        cls_id, sep_id, pad_id, mask_id: the tokenizer's special ids.
        special_ids: every special id (never sampled as content).
        task: the task (labels, pairs, regression).
        max_length: tokens per example.
        batch_size: examples per student step.
        device: ``cpu`` or ``cuda``.
        seed: trial seed.
        ood: the out-of-domain transfer set with the teacher's cached logits, or None.
        cache_dir: folder for artifacts shared by trials (AS-DFD's pseudo-sample bank), or None.
        teacher_fingerprint: hash of the teacher's weights (a cache-key part).
        tokens: the vocabulary as strings, by id (for readable generated samples).
    """

    teacher: nn.Module
    teacher_embeddings: Tensor
    cls_id: int
    sep_id: int
    pad_id: int
    mask_id: int
    special_ids: tuple[int, ...]
    task: TaskSpec
    max_length: int
    batch_size: int
    device: str = "cpu"
    seed: int = 0
    ood: EncodedSplit | None = None
    cache_dir: str | None = None
    teacher_fingerprint: str = ""
    tokens: tuple[str, ...] = ()

    @property
    def hidden_size(self) -> int:
        """The teacher's word-embedding width ``H``."""
        return int(self.teacher_embeddings.shape[1])

    @property
    def vocab_size(self) -> int:
        """Rows ``V`` of the teacher's vocabulary."""
        return int(self.teacher_embeddings.shape[0])

    def content_mask(self) -> Tensor:
        """``[V]`` bool: True for ids that may appear as generated content (not special tokens)."""
        mask = torch.ones(self.vocab_size, dtype=torch.bool, device=self.teacher_embeddings.device)
        mask[list(self.special_ids)] = False
        return mask


class DataFreeTrainer(Protocol):
    """One data-free method's training logic, as :func:`~raykd.datafree.loop.fit_data_free` sees it."""

    student_modules: dict[str, nn.Module]
    """Extra modules trained with the student (an input projection, a self-supervised head).
    Those deployed with the student (``projection``) are counted in its parameters."""

    def generator_steps(self, student: nn.Module, step: int) -> dict[str, float]:
        """Update the generator (or pseudo samples) if the schedule says so before student step ``step``.

        Returns:
            ``{name: float}`` to log (empty when nothing was updated).
        """
        ...

    def student_loss(self, student: nn.Module, step: int) -> tuple[Tensor, dict[str, float]]:
        """The student's loss on one transfer batch (a scalar in the student's graph) and parts to log."""
        ...

    def diagnostics(self, student: nn.Module) -> tuple[dict[str, float], str]:
        """Metrics on freshly generated samples and a text sample (nearest vocabulary tokens)."""
        ...

    def prepare_student(self, student: nn.Module) -> None:
        """Optional. Make ``student`` ready to read real token ids; called before every evaluation and save.

        For example AS-DFD writes its learned input map into the student's word-embedding table,
        which pseudo samples bypass in training.
        """
        ...

    def state_dict(self) -> dict[str, Any]:
        """Generator / bank / optimiser state for checkpoints."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        ...


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode with no parameter requiring grad; return it."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module


def teacher_logits_from_embeds(teacher: nn.Module, embeds: Tensor, attention_mask: Tensor,
                               token_type_ids: Tensor | None) -> Tensor:
    """The teacher's logits ``[B, C]`` for raw word vectors ``embeds [B, T, H]``.

    Gradients flow to ``embeds`` (for generator steps), never into the frozen teacher.
    """
    kwargs = {"inputs_embeds": embeds, "attention_mask": attention_mask}
    if token_type_ids is not None and _accepts_token_types(teacher):
        kwargs["token_type_ids"] = token_type_ids
    return teacher(**kwargs).logits.float()


def _accepts_token_types(teacher: nn.Module) -> bool:
    """DistilBERT/RoBERTa-style heads take no ``token_type_ids``; BERT-style ones do."""
    import inspect

    return "token_type_ids" in inspect.signature(teacher.forward).parameters
