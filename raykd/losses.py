"""Distillation losses: pure tensor functions.

Notation (``shared/METHODS.md``): student logits ``z_s`` and teacher logits ``z_t``, both
``[B, C]`` (``C = num_labels``; 1 for regression), temperature ``T``, gold labels ``y``.
Gradients flow into both ``z_s`` and ``z_t`` (adversarial generators need the latter); detach
``z_t`` before calling when the teacher must stay constant.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "DISCREPANCIES",
    "kl_divergence",
    "logit_mse",
    "logit_l1",
    "discrepancy",
    "hard_label_loss",
    "kd_loss",
]

DISCREPANCIES = ("kl", "mse", "l1")


def kl_divergence(z_s: Tensor, z_t: Tensor, temperature: float) -> Tensor:
    """Temperature-scaled KL divergence of the student from the teacher (Hinton et al. 2015).

    ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, summed over classes and averaged over the
    batch ("batchmean"); the ``T^2`` keeps gradient magnitudes comparable across temperatures.

    Args:
        z_s: student logits ``[B, C]``.
        z_t: teacher logits ``[B, C]``.
        temperature: ``T > 0``.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: ``temperature <= 0``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    log_p_s = F.log_softmax(z_s / temperature, dim=-1)
    log_p_t = F.log_softmax(z_t / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * temperature**2


def logit_mse(z_s: Tensor, z_t: Tensor) -> Tensor:
    """Mean squared error between logits, averaged over all ``B * C`` elements (Tang et al. 2019).

    Args:
        z_s: student logits ``[B, C]``.
        z_t: teacher logits ``[B, C]``.

    Returns:
        Scalar tensor.
    """
    return F.mse_loss(z_s, z_t)


def logit_l1(z_s: Tensor, z_t: Tensor) -> Tensor:
    """Mean absolute error between logits, averaged over all ``B * C`` elements (DFAD lineage).

    Args:
        z_s: student logits ``[B, C]``.
        z_t: teacher logits ``[B, C]``.

    Returns:
        Scalar tensor.
    """
    return F.l1_loss(z_s, z_t)


def discrepancy(kind: str, z_s: Tensor, z_t: Tensor, temperature: float = 1.0) -> Tensor:
    """The teacher-student discrepancy named ``kind``.

    Args:
        kind: ``kl`` (uses ``temperature``), ``mse`` or ``l1``.
        z_s: student logits ``[B, C]``.
        z_t: teacher logits ``[B, C]``.
        temperature: ``T`` for ``kl``; ignored otherwise.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: unknown ``kind``.
    """
    if kind == "kl":
        return kl_divergence(z_s, z_t, temperature)
    if kind == "mse":
        return logit_mse(z_s, z_t)
    if kind == "l1":
        return logit_l1(z_s, z_t)
    raise ValueError(f"unknown discrepancy {kind!r}; choose one of {', '.join(DISCREPANCIES)}")


def hard_label_loss(z_s: Tensor, labels: Tensor, regression: bool) -> Tensor:
    """Loss against gold labels, over the rows that have one.

    Transfer sets mix gold examples with augmented or generated ones that only the teacher
    labelled; those carry label -1 (NaN for regression) and are left out of this term.

    Args:
        z_s: student logits ``[B, C]`` (``[B, 1]`` for regression).
        labels: ``[B]`` class ids (long; -1 = none), or ``[B]`` float targets for regression (NaN = none).
        regression: use MSE of ``z_s[:, 0]`` against ``labels`` instead of cross-entropy.

    Returns:
        Scalar tensor: the mean over labelled rows (0 when the batch has none).
    """
    if regression:
        labels = labels.to(z_s.dtype)
        known = ~torch.isnan(labels)
        return F.mse_loss(z_s[known, 0], labels[known]) if known.any() else z_s.sum() * 0
    labels = labels.long()
    known = labels >= 0
    if not known.all():
        return F.cross_entropy(z_s[known], labels[known]) if known.any() else z_s.sum() * 0
    return F.cross_entropy(z_s, labels)


def kd_loss(
    z_s: Tensor,
    z_t: Tensor | None,
    labels: Tensor | None,
    *,
    kind: str,
    temperature: float,
    alpha: float,
    regression: bool,
) -> tuple[Tensor, dict[str, float]]:
    """Knowledge-distillation loss ``alpha * hard + (1 - alpha) * discrepancy``.

    Regression always uses ``mse`` on the single output, whatever ``kind`` says. A term whose
    weight is 0 is left out of the graph (so a NaN there cannot leak in) but still reported when
    its inputs exist; a term that cannot be computed (``labels`` or ``z_t`` is None) is reported
    as 0.0.

    Args:
        z_s: student logits ``[B, C]``.
        z_t: teacher logits ``[B, C]``; may be None when ``alpha == 1``.
        labels: gold labels ``[B]``; may be None when ``alpha == 0``.
        kind: discrepancy name (``kl``, ``mse``, ``l1``).
        temperature: ``T`` for ``kl``.
        alpha: weight of the hard-label loss, in ``[0, 1]``.
        regression: the task is regression (``C == 1``).

    Returns:
        ``(loss, {"loss_soft": float, "loss_hard": float})``: the scalar loss to minimise and its
        two terms as python floats for logging.

    Raises:
        ValueError: ``alpha`` outside ``[0, 1]``, a needed input missing, or an unknown ``kind``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if labels is None and alpha > 0:
        raise ValueError(f"alpha is {alpha} but no labels were given; use alpha 0 without gold labels")
    if z_t is None and alpha < 1:
        raise ValueError(f"alpha is {alpha} but no teacher logits were given")
    kind = "mse" if regression else kind
    soft = _term(alpha < 1, z_t is not None, lambda: discrepancy(kind, z_s, z_t, temperature))
    hard = _term(alpha > 0, labels is not None, lambda: hard_label_loss(z_s, labels, regression))
    if alpha == 0:
        loss = soft
    elif alpha == 1:
        loss = hard
    else:
        loss = alpha * hard + (1 - alpha) * soft
    return loss, {"loss_soft": float(soft.detach()), "loss_hard": float(hard.detach())}


def _term(weighted: bool, available: bool, compute) -> Tensor:
    """A loss term: in the graph when weighted, computed without grad for logging otherwise."""
    if weighted:
        return compute()
    if not available:
        return torch.zeros(())
    with torch.no_grad():
        return compute()
