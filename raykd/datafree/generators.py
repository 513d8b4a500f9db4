"""Generators of adversarial transfer samples for zero-shot KD.

Both generators produce vectors in the teacher's raw word-embedding space (width ``H``); the output
space then decides what the models read:

- ``gumbel_vocab``: the vectors score every vocabulary row by dot product with the teacher's
  (frozen) word-embedding matrix; a straight-through Gumbel-softmax picks one token per position
  (MATE-KD, Rashid et al. 2021a); each model embeds that token with its own table
  (``one_hot @ W``), so gradients reach the generator through both models.
- ``embedding``: the vectors themselves, rescaled to the mean norm of real vocabulary rows, are
  the teacher's input; the student reads them directly (same width) or through a learned
  projection ``Linear(H -> E)``.

Shapes: ``B`` batch, ``N`` content positions, ``H`` teacher width, ``V`` vocabulary rows.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["NoiseGenerator", "PerturbGenerator"]


class NoiseGenerator(nn.Module):
    """Gaussian noise to ``N`` content vectors (ZSKT's generator, for sequences).

    ``z ~ N(0, I)`` of width ``noise_dim`` sets the initial state of a one-layer LSTM that reads
    learned position vectors; a linear layer maps its states to the teacher's width.

    Args:
        noise_dim: width of ``z``.
        hidden: LSTM width.
        length: content positions ``N``.
        out_dim: ``H``.
    """

    def __init__(self, noise_dim: int, hidden: int, length: int, out_dim: int):
        super().__init__()
        self.noise_dim, self.length = noise_dim, length
        self.init_h = nn.Linear(noise_dim, hidden)
        self.init_c = nn.Linear(noise_dim, hidden)
        self.positions = nn.Parameter(torch.randn(length, hidden) * 0.02)
        self.input = nn.Linear(noise_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, batch: int, device: str | torch.device = "cpu") -> Tensor:
        """``[batch, N, H]`` content vectors from fresh noise."""
        z = torch.randn(batch, self.noise_dim, device=device)
        h0, c0 = torch.tanh(self.init_h(z))[None], torch.tanh(self.init_c(z))[None]
        x = self.positions[None] + self.input(z)[:, None]
        states, _ = self.lstm(x, (h0, c0))
        return self.out(states)


class PerturbGenerator(nn.Module):
    """Rewrites chosen positions of real (out-of-domain) sentences, MATE-KD style.

    Reads the teacher's word vectors of a sentence plus noise with a one-layer BiLSTM and
    proposes a vector for every position; the caller keeps the proposals only at the positions
    it chose to perturb.

    Args:
        in_dim: ``H`` (the input is the teacher's word vectors).
        hidden: BiLSTM width per direction.
        noise_dim: noise added per position.
    """

    def __init__(self, in_dim: int, hidden: int, noise_dim: int = 16):
        super().__init__()
        self.noise_dim = noise_dim
        self.lstm = nn.LSTM(in_dim + noise_dim, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, in_dim)

    def forward(self, word_vectors: Tensor) -> Tensor:
        """``word_vectors [B, T, H]`` -> proposals ``[B, T, H]``."""
        noise = torch.randn(*word_vectors.shape[:2], self.noise_dim, device=word_vectors.device)
        states, _ = self.lstm(torch.cat([word_vectors, noise], dim=-1))
        return self.out(states)
