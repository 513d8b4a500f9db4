"""``zero_shot``: zero-shot knowledge distillation for NLP, no task data.

Paper: Rashid, Lioutas, Ghaddar & Rezagholizadeh 2021, "Towards Zero-Shot Knowledge Distillation for
Natural Language Processing" (arXiv 2012.15495, EMNLP 2021): the student learns the teacher's
output distribution from out-of-domain (OOD) text plus adversarial training, without any of the
task's training data; 75-92% of the teacher's score at 30x compression on six GLUE tasks.

What raykd does (``../shared/METHODS.md`` section 2): every student batch mixes teacher-labelled OOD
sentences (share ``ood_fraction``; their soft targets are cached once per sweep) with adversarial
samples from a generator. The generator maximises the same discrepancy (``kd_loss``) the student
minimises, in cycles of ``gen_steps`` generator steps before every ``student_steps`` student steps
(ZSKT's alternation). Generators (``generator``): ``noise`` (an LSTM from Gaussian noise to
``gen_length`` content vectors, framed by real ``[CLS]``/``[SEP]``; two segments for pair tasks)
and ``perturb`` (rewrites a share ``perturb_p`` of the tokens of OOD sentences, MATE-KD style).
Output space (``gen_space``): ``gumbel_vocab`` (straight-through Gumbel-softmax over the
vocabulary, times each model's own word-embedding matrix, fed as ``inputs_embeds``) or
``embedding`` (continuous vectors in the teacher's raw word-embedding space; the student must
embed at the teacher's width, or set ``projection: true`` for a learned ``Linear(H -> E)``, whose
parameters are counted in the student's).

Where raykd departs from the paper (whose method section could not be read here): the generator
architectures, the output-space choice, the schedule and the mixing are reconstructions from the
lineage code (ZSKT, DFAD, MATE-KD) and are searchable settings instead of fixed values; no gold
labels exist, so there is no ``alpha``; one worker per trial (no DDP).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from raykd.datafree.base import DataFreeEnv
from raykd.datafree.generators import NoiseGenerator, PerturbGenerator
from raykd.datafree.samples import (
    GeneratedBatch,
    class_diagnostics,
    describe_samples,
    frame_content,
    gumbel_tokens,
    nearest_tokens,
    sample_tokens,
    student_word_vectors,
)
from raykd.domains import ParamSpec
from raykd.losses import discrepancy

__all__ = ["PARAMS", "USES_TASK_TRAIN_DATA", "ZeroShotSettings", "ZeroShotTrainer", "active", "check_student",
           "make_trainer", "student_width"]

USES_TASK_TRAIN_DATA = False
NEEDS_OOD = True

PARAMS = {
    "kd_loss": ParamSpec(str, "kl", "discrepancy both players use: kl (T^2-scaled), mse or l1 on logits",
                         choices=("kl", "mse", "l1")),
    "temperature": ParamSpec(float, 1.0, "softmax temperature T of kl (> 0)", low=0, low_open=True),
    "ood_fraction": ParamSpec(float, 0.5, "share of each student batch that is teacher-labelled OOD text "
                              "(1 = OOD only, 0 = generated only)", low=0, high=1),
    "generator": ParamSpec(str, "noise", "noise: LSTM from Gaussian noise; perturb: rewrite OOD tokens",
                           choices=("noise", "perturb")),
    "gen_space": ParamSpec(str, "gumbel_vocab", "gumbel_vocab: tokens by straight-through Gumbel-softmax; "
                           "embedding: continuous teacher-space vectors", choices=("gumbel_vocab", "embedding")),
    "perturb_p": ParamSpec(float, 0.3, "share of OOD tokens the perturb generator rewrites", low=0, high=1,
                           low_open=True),
    "gen_length": ParamSpec(int, 24, "content tokens of a noise-generated sample (pairs: split in two)", low=2),
    "gen_steps": ParamSpec(int, 1, "generator steps per cycle", low=1),
    "student_steps": ParamSpec(int, 10, "student steps per cycle", low=1),
    "gen_lr": ParamSpec(float, 1.0e-3, "generator Adam learning rate", low=0, low_open=True),
    "gumbel_tau": ParamSpec(float, 1.0, "Gumbel-softmax temperature", low=0, low_open=True),
    "projection": ParamSpec(bool, False, "embedding space with a student narrower than the teacher: learn "
                            "Linear(H -> E) (counted in the student's parameters)"),
}


def active(chosen: dict) -> set[str]:
    """Settings that exist given those chosen so far.

    ``temperature`` only for ``kl``; ``perturb_p`` only for ``perturb``; ``gen_length`` only for
    ``noise``; ``projection`` only for ``embedding``; no generator settings at ``ood_fraction`` 1
    with the noise generator (the generator is then unused).
    """
    names = set(PARAMS)
    if chosen.get("kd_loss", "kl") != "kl":
        names.discard("temperature")
    generator = chosen.get("generator", "noise")
    names.discard("gen_length" if generator == "perturb" else "perturb_p")
    if chosen.get("gen_space", "gumbel_vocab") != "embedding":
        names.discard("projection")
    return names


def needs_ood(domains: dict) -> bool:
    """Whether a space's settings read an OOD corpus: not when ``ood_fraction`` is fixed at 0 with the noise
    generator (pure adversarial samples, nothing but the teacher), which a space without ``data.ood`` can run."""
    from raykd.domains import domain_values

    fractions = [float(v) for v in domain_values(domains["ood_fraction"])] if "ood_fraction" in domains else [0.5]
    generators = [str(v) for v in domain_values(domains["generator"])] if "generator" in domains else ["noise"]
    return any(f > 0 for f in fractions) or "perturb" in generators


def student_width(family: str, student_params: dict, teacher_config: dict) -> int:
    """Width ``E`` of a student's word embeddings (what generated vectors must have)."""
    if family == "bilstm":
        return int(student_params["embedding_dim"])
    if str(student_params.get("init", "random")).startswith("teacher"):
        return int(teacher_config["hidden_size"])
    return int(student_params["hidden_size"])


def check_student(params: dict, family: str, student_params: dict, teacher_config: dict) -> None:
    """Refuse a (settings, student) combination that cannot run.

    Raises:
        RaykdInputError: ``embedding`` space with a student whose embedding width differs from the
            teacher's and ``projection`` off.
    """
    from raykd.errors import RaykdInputError

    if params.get("gen_space") != "embedding" or params.get("projection"):
        return
    width, teacher_width = student_width(family, student_params, teacher_config), int(teacher_config["hidden_size"])
    if width != teacher_width:
        raise RaykdInputError(
            f"zero_shot: gen_space embedding makes vectors in the teacher's {teacher_width}-d embedding space but "
            f"{family} embeds in {width}-d; set methods.zero_shot.projection: true, use gen_space gumbel_vocab, or a "
            f"student of width {teacher_width}")


@dataclass(frozen=True)
class ZeroShotSettings:
    """Resolved ``zero_shot`` settings (see :data:`PARAMS`)."""

    kd_loss: str = "kl"
    temperature: float = 1.0
    ood_fraction: float = 0.5
    generator: str = "noise"
    gen_space: str = "gumbel_vocab"
    perturb_p: float = 0.3
    gen_length: int = 24
    gen_steps: int = 1
    student_steps: int = 10
    gen_lr: float = 1.0e-3
    gumbel_tau: float = 1.0
    projection: bool = False


class ZeroShotTrainer:
    """Transfer batches of OOD text and adversarial samples; the generator plays against the student.

    Args:
        settings: resolved settings.
        env: teacher, tokenizer ids, OOD set (required when ``ood_fraction > 0`` or ``perturb``).
        student: the student (its word-embedding table embeds Gumbel tokens).

    Raises:
        ValueError: no OOD set although the settings need one.
    """

    def __init__(self, settings: ZeroShotSettings, env: DataFreeEnv, student: nn.Module):
        self.s, self.env = settings, env
        needs_ood = settings.ood_fraction > 0 or settings.generator == "perturb"
        if needs_ood and (env.ood is None or len(env.ood) == 0):
            raise ValueError("zero_shot needs an out-of-domain transfer set (data.ood) for these settings")
        self.n_ood = round(settings.ood_fraction * env.batch_size)
        self.n_gen = env.batch_size - self.n_ood
        hidden = env.hidden_size
        width = student_word_vectors(student).shape[1]
        self.student_modules: dict[str, nn.Module] = {}
        self.projection = None
        if settings.gen_space == "embedding" and width != hidden:
            self.projection = nn.Linear(hidden, width).to(env.device)
            self.student_modules["projection"] = self.projection
        if settings.generator == "noise":
            self.generator: nn.Module = NoiseGenerator(64, 256, settings.gen_length, hidden)
        else:
            self.generator = PerturbGenerator(hidden, 128)
        self.generator.to(env.device)
        self.gen_optimizer = torch.optim.Adam(self.generator.parameters(), lr=settings.gen_lr, betas=(0.5, 0.999))
        self.allowed = env.content_mask()
        self.special = (~self.allowed).nonzero().squeeze(1)
        self.real_norm = env.teacher_embeddings[self.allowed].norm(dim=-1).mean()
        self.rng = np.random.default_rng(env.seed)

    # -- samples ---------------------------------------------------------------------------
    def _ood_batch(self, size: int) -> dict[str, Tensor]:
        from raykd.distill.batching import to_tensors

        index = np.sort(self.rng.choice(len(self.env.ood), size=size, replace=size > len(self.env.ood)))
        return to_tensors(self.env.ood, index, self.env.pad_id, self.env.device)

    def _to_models(self, vectors: Tensor, student: nn.Module) -> tuple[Tensor, Tensor, Tensor | None]:
        """Generator vectors ``[B, N, H]`` -> (teacher vectors, student vectors, token ids or None)."""
        w_t, w_s = self.env.teacher_embeddings, student_word_vectors(student)
        if self.s.gen_space == "gumbel_vocab":
            if not vectors.requires_grad:  # a student step: draw the tokens and look their rows up
                ids = sample_tokens(vectors @ w_t.T, self.special)
                return w_t[ids], w_s[ids], ids
            onehot = gumbel_tokens(vectors @ w_t.T, self.s.gumbel_tau, self.allowed)
            return onehot @ w_t, onehot @ w_s, onehot.argmax(dim=-1)
        scaled = vectors * (self.real_norm / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-6))
        return scaled, (self.projection(scaled) if self.projection is not None else scaled), None

    def generate(self, student: nn.Module, size: int, train_generator: bool) -> GeneratedBatch:
        """``size`` adversarial samples; gradients reach the generator only when ``train_generator``."""
        if self.s.generator == "perturb":
            return self._perturb(student, size, train_generator)
        from raykd.datafree.samples import frame_ids

        w_t, w_s = self.env.teacher_embeddings, student_word_vectors(student)
        with torch.set_grad_enabled(train_generator):
            content = self.generator(size, self.env.device)
        t_vec, s_vec, gen_ids = self._to_models(content, student)
        t_emb, mask, types = frame_content(t_vec, w_t, self.env)
        s_emb, _, _ = frame_content(s_vec, w_s, self.env)  # the student's own [CLS]/[SEP] rows
        ids_out = frame_ids(gen_ids, self.env)[0] if gen_ids is not None else None
        return GeneratedBatch(t_emb, s_emb, mask, types, ids_out)

    def _perturb(self, student: nn.Module, size: int, train_generator: bool) -> GeneratedBatch:
        """``size`` OOD sentences with a share ``perturb_p`` of their content tokens rewritten.

        Only the chosen positions go through the output space (a vocabulary-wide softmax costs
        ``V`` per position), which keeps a 30k-vocabulary step about as cheap as a noise step.
        """
        w_t, w_s = self.env.teacher_embeddings, student_word_vectors(student)
        batch = self._ood_batch(size)
        ids, mask, types = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        special = torch.isin(ids, torch.tensor(self.env.special_ids, device=ids.device))
        chosen = (torch.rand(ids.shape, device=ids.device) < self.s.perturb_p) & mask.bool() & ~special
        with torch.set_grad_enabled(train_generator):
            proposals = self.generator(w_t[ids])[chosen]  # [K, H]
        t_vec, s_vec, gen_ids = self._to_models(proposals[None], student)  # [1, K, H]
        t_emb = w_t[ids].index_put((chosen,), t_vec[0].to(w_t.dtype))
        s_emb = w_s[ids].index_put((chosen,), s_vec[0].to(w_s.dtype))
        ids_out = ids.index_put((chosen,), gen_ids[0]) if gen_ids is not None else None
        return GeneratedBatch(t_emb, s_emb, mask, types, ids_out)

    # -- the two players -------------------------------------------------------------------
    def _discrepancy(self, z_s: Tensor, z_t: Tensor) -> Tensor:
        kind = "mse" if self.env.task.is_regression else self.s.kd_loss
        return discrepancy(kind, z_s, z_t, self.s.temperature)

    def generator_steps(self, student: nn.Module, step: int) -> dict[str, float]:
        """``gen_steps`` generator updates before every ``student_steps``-th student step (none when unused)."""
        if self.n_gen == 0 or step % self.s.student_steps:
            return {}
        self.generator.train()
        losses = []
        for _ in range(self.s.gen_steps):
            batch = self.generate(student, self.env.batch_size, train_generator=True)
            loss = -self._discrepancy(batch.student_logits(student), batch.teacher_logits(self.env))
            self.gen_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.generator.parameters(), 5.0)
            self.gen_optimizer.step()
            losses.append(-loss.item())
        return {"gen_discrepancy": float(np.mean(losses))}

    def student_loss(self, student: nn.Module, step: int) -> tuple[Tensor, dict[str, float]]:
        """Count-weighted discrepancy on ``n_ood`` OOD examples plus ``n_gen`` generated samples."""
        total, parts = 0.0, {}
        if self.n_ood:
            batch = self._ood_batch(self.n_ood)
            z_s = student(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            ood = self._discrepancy(z_s.float(), batch["teacher_logits"])
            total = total + ood * self.n_ood
            parts["ood_loss"] = ood.item()
        if self.n_gen:
            gen = self.generate(student, self.n_gen, train_generator=False)
            with torch.no_grad():
                z_t = gen.teacher_logits(self.env)
            adv = self._discrepancy(gen.student_logits(student).float(), z_t)
            total = total + adv * self.n_gen
            parts["gen_loss"] = adv.item()
        return total / self.env.batch_size, parts

    # -- bookkeeping -----------------------------------------------------------------------
    def diagnostics(self, student: nn.Module) -> tuple[dict[str, float], str]:
        """Teacher class histogram and entropy, agreement, on 64 fresh samples; their nearest tokens."""
        with torch.no_grad():
            gen = self.generate(student, 64, train_generator=False)
            z_t, z_s = gen.teacher_logits(self.env), gen.student_logits(student).float()
        ids = gen.ids if gen.ids is not None else nearest_tokens(gen.teacher_embeds, self.env.teacher_embeddings)
        return class_diagnostics(z_t, z_s), describe_samples(ids, list(self.env.tokens), z_t, self.env.task.label_names)

    def state_dict(self) -> dict:
        """Generator, its optimiser, the projection (when used) and the sampling RNG."""
        state = {"generator": self.generator.state_dict(), "gen_optimizer": self.gen_optimizer.state_dict(),
                 "rng": self.rng.bit_generator.state}
        if self.projection is not None:
            state["projection"] = self.projection.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""
        self.generator.load_state_dict(state["generator"])
        self.gen_optimizer.load_state_dict(state["gen_optimizer"])
        self.rng.bit_generator.state = state["rng"]
        if self.projection is not None and "projection" in state:
            self.projection.load_state_dict(state["projection"])


def make_trainer(params: dict, env: DataFreeEnv, student: nn.Module) -> ZeroShotTrainer:
    """Build the trainer from a trial's resolved ``zero_shot`` settings."""
    known = {k: params[k] for k in PARAMS if k in params}
    return ZeroShotTrainer(ZeroShotSettings(**known), env, student)
