"""Distillation losses against torch references and hand values."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math

import pytest
import torch
import torch.nn.functional as F

from raykd.losses import discrepancy, hard_label_loss, kd_loss, kl_divergence, logit_l1, logit_mse


def _logits(seed=0, shape=(4, 3)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * 3


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0])
def test_kl_matches_torch_batchmean(temperature):
    z_s, z_t = _logits(0), _logits(1)
    reference = F.kl_div(
        F.log_softmax(z_s / temperature, -1), F.softmax(z_t / temperature, -1), reduction="batchmean"
    ) * temperature**2
    torch.testing.assert_close(kl_divergence(z_s, z_t, temperature), reference)
    # batchmean: sum over classes, mean over the batch
    p_t, p_s = F.softmax(z_t / temperature, -1), F.softmax(z_s / temperature, -1)
    by_hand = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * temperature**2
    torch.testing.assert_close(kl_divergence(z_s, z_t, temperature), by_hand)


def test_kl_zero_for_equal_logits_and_grows_with_disagreement():
    z_t = _logits(1)
    assert kl_divergence(z_t.clone(), z_t, 2.0).abs() < 1e-6
    losses = [kl_divergence(z_t + s * _logits(2), z_t, 2.0).item() for s in (0.1, 0.5, 1.0, 2.0)]
    assert losses == sorted(losses) and losses[0] > 0


def test_kl_temperature_squared_scaling():
    z_s, z_t = _logits(0), _logits(1)
    raw = F.kl_div(F.log_softmax(z_s / 3, -1), F.log_softmax(z_t / 3, -1), reduction="batchmean", log_target=True)
    torch.testing.assert_close(kl_divergence(z_s, z_t, 3.0), 9 * raw)
    # scaling all logits by T leaves softmax(z/T) unchanged, so the loss scales exactly by T^2
    torch.testing.assert_close(kl_divergence(2 * z_s, 2 * z_t, 2.0), 4 * kl_divergence(z_s, z_t, 1.0))


def test_kl_rejects_bad_temperature():
    with pytest.raises(ValueError, match="temperature"):
        kl_divergence(_logits(0), _logits(1), 0.0)


def test_mse_and_l1_by_hand():
    z_s = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    z_t = torch.tensor([[0.0, 4.0], [0.0, 2.0]])
    # differences 1, -2, 0, -3
    assert logit_mse(z_s, z_t).item() == pytest.approx((1 + 4 + 0 + 9) / 4)
    assert logit_l1(z_s, z_t).item() == pytest.approx((1 + 2 + 0 + 3) / 4)
    assert discrepancy("mse", z_s, z_t).item() == pytest.approx(3.5)
    assert discrepancy("l1", z_s, z_t, temperature=5.0).item() == pytest.approx(1.5)
    assert discrepancy("kl", z_s, z_t, 2.0) == kl_divergence(z_s, z_t, 2.0)


def test_unknown_discrepancy():
    with pytest.raises(ValueError, match="kl, mse, l1"):
        discrepancy("js", _logits(0), _logits(1))


def test_hard_label_loss():
    z_s, labels = _logits(0), torch.tensor([0, 2, 1, 1])
    torch.testing.assert_close(hard_label_loss(z_s, labels, regression=False), F.cross_entropy(z_s, labels))
    pred, gold = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 3.5])
    assert hard_label_loss(pred, gold, regression=True).item() == pytest.approx((1 + 0.25) / 2)


def test_hard_label_loss_skips_rows_without_gold_labels():
    """Teacher-only rows of a transfer set (label -1, NaN for regression) add nothing to the hard term."""
    z_s, labels = _logits(0), torch.tensor([0, -1, 1, -1])
    torch.testing.assert_close(hard_label_loss(z_s, labels, regression=False),
                               F.cross_entropy(z_s[[0, 2]], labels[[0, 2]]))
    none = hard_label_loss(z_s, torch.full((4,), -1), regression=False)
    assert none.item() == 0.0 and none.requires_grad == z_s.requires_grad
    pred, gold = torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([1.0, float("nan"), 2.0])
    assert hard_label_loss(pred, gold, regression=True).item() == pytest.approx((0 + 1) / 2)


def test_kd_loss_mixes_with_alpha():
    z_s, z_t, labels = _logits(0), _logits(1), torch.tensor([0, 2, 1, 1])
    soft, hard = kl_divergence(z_s, z_t, 2.0), F.cross_entropy(z_s, labels)
    loss, logs = kd_loss(z_s, z_t, labels, kind="kl", temperature=2.0, alpha=0.3, regression=False)
    torch.testing.assert_close(loss, 0.3 * hard + 0.7 * soft)
    assert logs == {"loss_soft": pytest.approx(soft.item()), "loss_hard": pytest.approx(hard.item())}
    assert all(isinstance(v, float) for v in logs.values())


def test_kd_loss_extremes():
    z_s, z_t, labels = _logits(0), _logits(1), torch.tensor([0, 2, 1, 1])
    only_soft, logs = kd_loss(z_s, z_t, None, kind="l1", temperature=1.0, alpha=0.0, regression=False)
    torch.testing.assert_close(only_soft, logit_l1(z_s, z_t))
    assert logs["loss_hard"] == 0.0  # no labels: reported as 0
    only_hard, logs = kd_loss(z_s, z_t, labels, kind="mse", temperature=1.0, alpha=1.0, regression=False)
    torch.testing.assert_close(only_hard, F.cross_entropy(z_s, labels))
    assert logs["loss_soft"] == pytest.approx(logit_mse(z_s, z_t).item())  # still logged
    # a weight-0 term stays out of the graph: NaN teacher logits do not reach an alpha-1 loss
    loss, _ = kd_loss(z_s, torch.full_like(z_t, math.nan), labels, kind="kl", temperature=1.0, alpha=1.0, regression=False)
    assert torch.isfinite(loss)


def test_kd_loss_input_errors():
    z_s, z_t = _logits(0), _logits(1)
    with pytest.raises(ValueError, match="no labels"):
        kd_loss(z_s, z_t, None, kind="kl", temperature=1.0, alpha=0.5, regression=False)
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(z_s, z_t, None, kind="kl", temperature=1.0, alpha=1.5, regression=False)
    with pytest.raises(ValueError, match="teacher logits"):
        kd_loss(z_s, None, torch.tensor([0, 1, 1, 0]), kind="kl", temperature=1.0, alpha=0.5, regression=False)


def test_kd_loss_regression_uses_mse():
    z_s, z_t = torch.tensor([[1.0], [2.0]]), torch.tensor([[1.5], [0.0]])
    labels = torch.tensor([1.0, 2.0])
    loss, logs = kd_loss(z_s, z_t, labels, kind="kl", temperature=4.0, alpha=0.5, regression=True)
    soft, hard = (0.25 + 4.0) / 2, 0.0
    assert logs == {"loss_soft": pytest.approx(soft), "loss_hard": pytest.approx(hard)}
    assert loss.item() == pytest.approx(0.5 * soft + 0.5 * hard)


@pytest.mark.parametrize("kind", ["kl", "mse", "l1"])
def test_gradients_finite(kind):
    z_s = (_logits(0) * 30).requires_grad_()  # confident logits must not overflow
    z_t = _logits(1) * 30
    loss, _ = kd_loss(z_s, z_t, torch.tensor([0, 2, 1, 1]), kind=kind, temperature=0.5, alpha=0.5, regression=False)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z_s.grad).all() and z_s.grad.abs().sum() > 0
