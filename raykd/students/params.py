"""Parameter counting, with and without embedding matrices.

Counting rule (stated wherever a compression ratio is reported): every parameter of the module,
trainable or frozen, each shared tensor once; ``non_embedding`` leaves out the parameters of every
``nn.Embedding`` (word, position and token-type tables).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["ParamCount", "count_parameters"]


@dataclass(frozen=True)
class ParamCount:
    """Parameter counts of a model.

    Attributes:
        total: every parameter (trainable or frozen), shared tensors once.
        non_embedding: ``total`` minus the parameters of every ``nn.Embedding``.
    """

    total: int
    non_embedding: int

    @property
    def embedding(self) -> int:
        """Parameters held by embedding tables."""
        return self.total - self.non_embedding


def count_parameters(model: nn.Module) -> ParamCount:
    """Count the parameters of ``model`` (see the module docstring for the rule)."""
    embedding_ids = {
        id(p)
        for module in model.modules()
        if isinstance(module, nn.Embedding)
        for p in module.parameters(recurse=False)
    }
    params = list(model.parameters())  # parameters() yields a shared tensor once
    total = sum(p.numel() for p in params)
    non_embedding = sum(p.numel() for p in params if id(p) not in embedding_ids)
    return ParamCount(total=total, non_embedding=non_embedding)
