"""``vanilla``: soft-target knowledge distillation on the task's own data.

Papers: Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network" (soft targets
at temperature T, T^2-scaled KL); Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT
into Simple Neural Networks" (arXiv 1903.12136; MSE on logits, BiLSTM students).

The teacher labels the task's training set once (the cached soft targets); the student minimises
``alpha * CE(z_s, y) + (1 - alpha) * D(z_s, z_t)`` where ``D`` is ``kd_loss``:

- ``kl``: ``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, batch-mean (Hinton et al.);
- ``mse``: mean squared error on logits (Tang et al.).

Regression tasks (STS-B) use MSE on the single output for both terms.

``augment: tang`` adds Tang et al.'s augmented transfer set (masking, same-part-of-speech
replacement, n-gram sampling; :mod:`raykd.transfer.augment`) to the training split: the teacher
labels it, it is built once per (rates, data, seed) and shared by trials
(:mod:`raykd.transfer.store`). Augmented rows carry no gold label, so ``alpha``'s hard term sees
only the original examples (Tang et al. instead gave augmented rows the teacher's argmax).

Where raykd departs from the papers: Tang et al. use word2vec embeddings; raykd's students use the
teacher's WordPiece vocabulary (see :mod:`raykd.students.bilstm`). ``alpha`` and ``T`` are
searched instead of fixed.

Example search-space entry::

    methods:
      vanilla: {kd_loss: [kl, mse], temperature: {low: 1, high: 8, log: true}, alpha: {low: 0, high: 1},
                augment: [none, tang]}
"""

from __future__ import annotations

from dataclasses import dataclass

from raykd.domains import ParamSpec
from raykd.transfer.sets import TANG_PARAMS, TANG_RATES, tang_request

__all__ = ["PARAMS", "KD_PARAMS", "ARMS", "VanillaKD", "make_method", "active", "transfer_requests"]

KD_PARAMS = {
    "kd_loss": ParamSpec(str, "kl", "soft-target discrepancy: kl (Hinton) or mse on logits (Tang)", choices=("kl", "mse")),
    "temperature": ParamSpec(float, 2.0, "softmax temperature T of the kl discrepancy (> 0)", low=0, low_open=True),
    "alpha": ParamSpec(float, 0.0, "weight of the gold-label loss; 1 - alpha weighs the soft targets", low=0, high=1),
}
"""The soft-target objective's settings (shared with ``generation``)."""

PARAMS = {**KD_PARAMS, **TANG_PARAMS}

ARMS = ("augment",)
"""Settings whose every choice a sweep tries once before Optuna's sampler takes over."""


def active(chosen: dict, names: set[str] | None = None) -> set[str]:
    """Settings that exist given those chosen so far: ``temperature`` only for ``kl``, rates only for ``tang``.

    Args:
        chosen: the settings sampled so far.
        names: the method's settings (default: this module's); ``generation`` passes its own.
    """
    names = set(PARAMS if names is None else names)
    if chosen.get("kd_loss", KD_PARAMS["kd_loss"].default) != "kl":
        names.discard("temperature")
    if chosen.get("augment", "none") != "tang":
        names -= set(TANG_RATES)
    return names


def transfer_requests(params: dict) -> list[tuple[str, dict]]:
    """The transfer sets a trial adds to the training split: Tang augmentation when ``augment: tang``."""
    return tang_request(params)


@dataclass(frozen=True)
class VanillaKD:
    """Soft-target KD objective (see the module docstring).

    Attributes:
        kd_loss: ``kl`` or ``mse``.
        temperature: T > 0 (used by ``kl``).
        alpha: weight of the gold-label term, in [0, 1].
        regression: the task has one real-valued output.
    """

    kd_loss: str
    temperature: float
    alpha: float
    regression: bool = False
    name: str = "vanilla"
    uses_task_train_data: bool = True

    def objective(self, student_logits, batch: dict):
        """``alpha * hard + (1 - alpha) * soft`` on one batch; see :func:`raykd.losses.kd_loss`."""
        from raykd.losses import kd_loss

        labels = batch.get("labels") if self.alpha > 0 else None
        return kd_loss(student_logits, batch["teacher_logits"], labels, kind=self.kd_loss,
                       temperature=self.temperature, alpha=self.alpha, regression=self.regression)


def make_method(params: dict, task, name: str = "vanilla") -> VanillaKD:
    """Build the objective from a trial's resolved settings and the task (``name``: the method it serves)."""
    return VanillaKD(kd_loss=params["kd_loss"], temperature=float(params.get("temperature", 1.0)),
                     alpha=float(params["alpha"]), regression=task.is_regression, name=name)
