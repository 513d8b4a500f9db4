"""``random_tokens``: the data-free lower bound, a student trained on teacher-labelled random token sequences.

No paper of its own: the random-text baseline of the data-free KD literature (the "random noise"
baselines of ZSKT, Micaelli & Storkey 2019, and of AS-DFD, Ma et al. 2020, here in token form).
Every student step draws ``gen_length`` content tokens uniformly from the non-special vocabulary
(two segments for pair tasks, framed by ``[CLS]``/``[SEP]``), the frozen teacher labels them, and
the student minimises ``kd_loss``. It shares every setting with ``zero_shot`` except the
generator, so a sweep's Pareto front shows what the adversarial and OOD parts add. No gold
labels exist, so there is no ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from raykd.datafree.base import DataFreeEnv
from raykd.datafree.samples import class_diagnostics, describe_samples, frame_ids
from raykd.domains import ParamSpec
from raykd.losses import discrepancy

__all__ = ["PARAMS", "USES_TASK_TRAIN_DATA", "RandomTokensTrainer", "active", "make_trainer"]

USES_TASK_TRAIN_DATA = False
NEEDS_OOD = False

PARAMS = {
    "kd_loss": ParamSpec(str, "kl", "discrepancy: kl (T^2-scaled), mse or l1 on logits", choices=("kl", "mse", "l1")),
    "temperature": ParamSpec(float, 1.0, "softmax temperature T of kl (> 0)", low=0, low_open=True),
    "gen_length": ParamSpec(int, 24, "content tokens per sample (pairs: split in two)", low=2),
}


def active(chosen: dict) -> set[str]:
    """``temperature`` only for ``kl``."""
    return set(PARAMS) if chosen.get("kd_loss", "kl") == "kl" else set(PARAMS) - {"temperature"}


@dataclass
class RandomTokensTrainer:
    """Uniformly random token sequences labelled by the teacher (see the module docstring).

    Attributes:
        kd_loss, temperature, gen_length: resolved settings.
        env: the data-free environment.
    """

    kd_loss: str
    temperature: float
    gen_length: int
    env: DataFreeEnv

    def __post_init__(self):
        self.student_modules: dict[str, nn.Module] = {}
        self.content_ids = torch.nonzero(self.env.content_mask()).squeeze(1)
        self.generator = torch.Generator(device="cpu").manual_seed(self.env.seed)

    def sample(self, size: int) -> tuple[Tensor, Tensor, Tensor]:
        """``size`` random sequences: ids, attention mask and token types, each ``[size, L]``."""
        pick = torch.randint(len(self.content_ids), (size, self.gen_length), generator=self.generator)
        ids, mask, types = frame_ids(self.content_ids.cpu()[pick], self.env)
        return ids.to(self.env.device), mask.to(self.env.device), types.to(self.env.device)

    def _teacher(self, ids, mask, types) -> Tensor:
        with torch.no_grad():
            return self.env.teacher(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.float()

    def generator_steps(self, student: nn.Module, step: int) -> dict[str, float]:
        """Nothing to update: the sequences are not adversarial."""
        return {}

    def student_loss(self, student: nn.Module, step: int) -> tuple[Tensor, dict[str, float]]:
        """Discrepancy between student and teacher on one batch of random sequences."""
        ids, mask, types = self.sample(self.env.batch_size)
        kind = "mse" if self.env.task.is_regression else self.kd_loss
        loss = discrepancy(kind, student(ids, mask, types).float(), self._teacher(ids, mask, types), self.temperature)
        return loss, {"gen_loss": loss.item()}

    def diagnostics(self, student: nn.Module) -> tuple[dict[str, float], str]:
        """Class histogram, entropy and agreement on 64 random sequences, and a few of them as text."""
        ids, mask, types = self.sample(64)
        with torch.no_grad():
            z_t, z_s = self._teacher(ids, mask, types), student(ids, mask, types).float()
        return class_diagnostics(z_t, z_s), describe_samples(ids, list(self.env.tokens), z_t, self.env.task.label_names)

    def state_dict(self) -> dict:
        """The sampling RNG."""
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.set_state(state["rng"])


def make_trainer(params: dict, env: DataFreeEnv, student: nn.Module) -> RandomTokensTrainer:
    """Build the trainer from a trial's resolved ``random_tokens`` settings."""
    return RandomTokensTrainer(kd_loss=params["kd_loss"], temperature=float(params.get("temperature", 1.0)),
                               gen_length=int(params["gen_length"]), env=env)
