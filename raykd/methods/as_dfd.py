"""``as_dfd``: Adversarial Self-Supervised Data-Free Distillation.

Paper: Ma, Shen, Fang, Chen, Jia & Lu 2020, "Adversarial Self-Supervised Data-Free Distillation for
Text Classification" (arXiv 2010.04883, EMNLP 2020). The student never sees task text:

1. **Plug & Play Embedding Guessing (PPEG)**, built once and cached (:func:`build_bank`): a bank of
   ``bank_per_class * num_labels`` pseudo samples, each ``gen_length`` content vectors in the
   teacher's raw word-embedding space ``[H]``, initialised from random real vocabulary rows (never
   special tokens) and framed by the real ``[CLS]``/``[SEP]`` rows, is optimised with
   Adam(``bank_lr``) for ``bank_steps`` steps to minimise
   ``CE(z_t, target) + norm_weight * mean((||v|| - r)^2)``, ``r`` the mean L2 norm of the real
   content rows. Targets are balanced: ``bank_per_class`` samples per class.
2. **Adversarial self-supervised distillation** (:class:`ASDFDTrainer`): each student step reads a
   random batch of the bank and minimises ``D(z_s, z_t) + ssl_weight * L_ssl``. ``L_ssl`` is the
   cross-entropy of a small head ``Linear(feature_dim -> 2)`` on the student's pooled features
   that tells transformed from untouched samples (``ssl_task``: ``shuffle`` permutes the content
   positions of half the batch; ``replace`` swaps the second half of the content, the second
   segment for pair tasks, with another sample's). Every ``adv_steps`` student steps a fresh
   batch of bank rows takes one Adam(``adv_lr``) step on ``-L_ssl + CE(z_t, target) + norm
   penalty`` (harder for the student, same class for the teacher) and is written back.

Both models read the teacher's real ``[CLS]``/``[SEP]`` rows around the content. The student reads
the framed sequence through ``projection`` (``Linear(H -> E)``, made only when the student's
embedding width ``E`` differs from ``H``) or unchanged; its own word-embedding table is not used in
training, and :meth:`ASDFDTrainer.prepare_student` (which the loop runs every epoch before it
evaluates and saves the student) writes ``projection(E_teacher)`` (or ``E_teacher``) into it, so the
student reads real token ids the way it read pseudo samples. The projection is counted with the
student's parameters; the self-supervised head is trained with the student but not deployed, so
it is not counted.

Where raykd departs from the paper (whose method section could not be read; see
``shared/notes/seeds-datafree.md`` section 2):

- the PPEG objective (CE to a target class plus a norm penalty on free vectors; no hidden-state
  term, no generator network), the self-supervised tasks, the adversarial objective and the
  ``adv_steps`` schedule (DFAD's 5:1 as default) are reconstructions, exposed as settings;
- the paper's student was probably a BERT of the teacher's width; students of another embedding
  width need the learned projection;
- defaults chosen on the real minilm-sst2 teacher: ``norm_weight`` 1.0 keeps the pseudo vectors at
  the real rows' norm (at 0.1 they drifted to 1.5-3.3x), and ``ssl_task`` ``replace`` (a small
  student learned to spot it, about 84%, where ``shuffle`` stayed near chance);
- regression tasks (STS-B) are refused: PPEG guesses samples per class;
- the bank is keyed by (teacher, task, bank settings, seed): trials with the same seed share one
  bank, and each trial adapts its own copy adversarially.

Example search-space entry::

    methods:
      as_dfd: {kd_loss: [kl, l1], ssl_task: [shuffle, replace], ssl_weight: {low: 0, high: 1}}
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raykd.domains import Choice, Fixed, ParamSpec, Range, domain_values
from raykd.errors import RaykdInputError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from raykd.data.tasks import TaskSpec
    from raykd.datafree.base import DataFreeEnv
    from raykd.datafree.samples import GeneratedBatch

__all__ = ["PARAMS", "USES_TASK_TRAIN_DATA", "ASDFDSettings", "ASDFDTrainer", "PseudoBank", "active",
           "build_bank", "check_student", "check_task", "make_trainer", "ssl_transform"]

USES_TASK_TRAIN_DATA = False
BANK_VERSION = 1
_BANK_CHUNK = 256  # samples optimised together while building the bank (they are independent)
_DIAG_LIMIT = 512  # bank samples read by diagnostics()
_BETAS, _EPS = (0.9, 0.999), 1e-8  # Adam constants of the adversarial bank update

PARAMS = {
    "kd_loss": ParamSpec(str, "kl", "teacher-student discrepancy on pseudo samples", choices=("kl", "mse", "l1")),
    "temperature": ParamSpec(float, 2.0, "softmax temperature T of the kl discrepancy (> 0)", low=0, low_open=True),
    "bank_per_class": ParamSpec(int, 64, "pseudo samples per class in the PPEG bank", low=1),
    "bank_steps": ParamSpec(int, 100, "Adam steps that build the bank (0: random vocabulary rows)", low=0),
    "bank_lr": ParamSpec(float, 0.05, "Adam learning rate of the bank's pseudo vectors", low=0, low_open=True),
    "norm_weight": ParamSpec(float, 1.0, "weight of the penalty pulling vector norms to the real rows' mean", low=0),
    "gen_length": ParamSpec(int, 16, "content vectors per pseudo sample (split in two for pair tasks)", low=2),
    "ssl_task": ParamSpec(str, "replace", "self-supervised task: shuffled positions or a replaced second half",
                          choices=("shuffle", "replace")),
    "ssl_weight": ParamSpec(float, 0.5, "weight of the self-supervised loss in the student's loss", low=0),
    "adv_steps": ParamSpec(int, 5, "student steps between two adversarial updates of bank rows", low=1),
    "adv_lr": ParamSpec(float, 0.01, "Adam learning rate of the adversarial bank update", low=0, low_open=True),
    "projection": ParamSpec(bool, False, "learn Linear(H -> E) into a student narrower or wider than the teacher"),
}


def active(chosen: dict) -> set[str]:
    """Settings that exist given those chosen so far: ``temperature`` only matters for ``kl``."""
    if chosen.get("kd_loss", PARAMS["kd_loss"].default) == "kl":
        return set(PARAMS)
    return set(PARAMS) - {"temperature"}


@dataclass(frozen=True)
class ASDFDSettings:
    """One trial's resolved ``as_dfd`` settings (see :data:`PARAMS` for meanings and bounds)."""

    kd_loss: str
    temperature: float
    bank_per_class: int
    bank_steps: int
    bank_lr: float
    norm_weight: float
    gen_length: int
    ssl_task: str
    ssl_weight: float
    adv_steps: int
    adv_lr: float
    projection: bool

    @classmethod
    def from_params(cls, params: dict) -> ASDFDSettings:
        """Check ``params`` against :data:`PARAMS`, filling defaults for omitted settings.

        Raises:
            RaykdInputError: an unknown setting or a value outside its spec.
        """
        unknown = set(params) - set(PARAMS)
        if unknown:
            raise RaykdInputError(f"methods.as_dfd: unknown settings {sorted(unknown)}; valid: {', '.join(PARAMS)}")
        return cls(**{f.name: PARAMS[f.name].check(params.get(f.name, PARAMS[f.name].default),
                                                   f"methods.as_dfd.{f.name}") for f in fields(cls)})

    def bank_settings(self) -> dict:
        """The settings that shape the bank (its cache-key part)."""
        keys = ("bank_per_class", "bank_steps", "bank_lr", "norm_weight", "gen_length")
        return {k: v for k, v in asdict(self).items() if k in keys}


# --- up-front checks ---------------------------------------------------------------------------


def check_task(task: TaskSpec) -> None:
    """Refuse tasks PPEG cannot guess samples for.

    Raises:
        RaykdInputError: a regression task (no classes to assign pseudo samples to).
    """
    if task.is_regression:
        raise RaykdInputError(f"as_dfd: {task.name} is a regression task, but pseudo samples are guessed per "
                              "class; use zero_shot or vanilla for it")


def check_student(params: dict, student_family: str, student_params: dict, teacher_config: dict | None) -> None:
    """Refuse a student that cannot read the teacher-space pseudo samples.

    Values may be plain settings or search domains (every value a domain can take is checked).

    Args:
        params: ``as_dfd`` settings (``projection`` is read).
        student_family: ``transformer`` or ``bilstm`` (others are not checked).
        student_params: the family's settings (omitted ones take their defaults).
        teacher_config: the teacher's ``config.json``; None skips the check.

    Raises:
        RaykdInputError: some student embedding width differs from the teacher's and
            ``projection`` may be false.
    """
    teacher_width = _teacher_width(teacher_config or {})
    if teacher_width is None or False not in _values(params.get("projection", PARAMS["projection"].default)):
        return
    for width in _student_widths(student_family, student_params, teacher_width):
        if width != teacher_width:
            raise RaykdInputError(_width_message(teacher_width, student_family, width))


def _width_message(teacher_width: int, family: str, width: int) -> str:
    return (f"as_dfd: pseudo samples live in the teacher's {teacher_width}-d embedding space but {family} embeds in "
            f"{width}-d; set methods.as_dfd.projection: true or use a student of width {teacher_width} "
            f"(transformer with teacher init, or bilstm embedding_dim {teacher_width})")


def _values(value: Any) -> tuple:
    return domain_values(value) if isinstance(value, (Fixed, Choice, Range)) else (value,)


def _student_widths(family: str, student_params: dict, teacher_width: int) -> set[int]:
    """Every word-embedding width ``E`` the student settings can produce."""
    from raykd.registry import STUDENTS

    if family not in ("transformer", "bilstm"):
        return set()
    specs = STUDENTS.load(family).PARAMS

    def setting(name: str) -> tuple:
        return _values(student_params.get(name, specs[name].default))

    if family == "bilstm":
        return {int(w) for w in setting("embedding_dim")}
    widths = set()
    for init in setting("init"):
        widths |= {teacher_width} if str(init).startswith("teacher") else {int(w) for w in setting("hidden_size")}
    return widths


def _teacher_width(config: dict) -> int | None:
    """The teacher's raw word-embedding width (ALBERT's ``embedding_size``, DistilBERT's ``dim``)."""
    for key in ("embedding_size", "hidden_size", "dim", "d_model"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def _check_length(settings: ASDFDSettings, env: DataFreeEnv) -> None:
    length = settings.gen_length + (3 if env.task.is_pair else 2)
    if length > env.max_length:
        raise RaykdInputError(f"as_dfd: gen_length {settings.gen_length} plus [CLS]/[SEP] makes {length} tokens, more "
                              f"than max_length {env.max_length}; lower methods.as_dfd.gen_length")


# --- stage 1: Plug & Play Embedding Guessing ----------------------------------------------------


@dataclass
class PseudoBank:
    """The PPEG bank of pseudo samples.

    Attributes:
        content: ``[N, gen_length, H]`` float32 content vectors in the teacher's raw word-embedding
            space (``N = bank_per_class * num_labels``), on the CPU.
        targets: ``[N]`` long target classes, class-major (``bank_per_class`` of class 0 first).
        path: the cached ``bank.pt``, or None without a cache folder.
        built: True if this call optimised the bank, False if it was read from the cache.
    """

    content: Tensor
    targets: Tensor
    path: Path | None
    built: bool


def build_bank(env: DataFreeEnv, settings: ASDFDSettings) -> PseudoBank:
    """Guess the bank once per (teacher, task, bank settings, seed); later calls read the cache.

    The file is ``<env.cache_dir>/as_dfd_banks/<key>/bank.pt`` (with a readable ``meta.json``),
    written to a temporary file and renamed under a file lock: concurrent trials that need the same
    bank wait for one build instead of each building it.

    Raises:
        RaykdInputError: a regression task.
    """
    check_task(env.task)
    key, meta = _bank_key(env, settings)
    path = Path(env.cache_dir) / "as_dfd_banks" / key / "bank.pt" if env.cache_dir else None
    expected = (settings.bank_per_class * env.task.num_labels, settings.gen_length, env.hidden_size)
    if path is None:
        return PseudoBank(*_guess_embeddings(env, settings), None, built=True)
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path.parent / "build.lock")):  # concurrent trials wait for one build, then read it
        if path.is_file():
            import torch

            saved = torch.load(path, map_location="cpu", weights_only=True)
            if tuple(saved["content"].shape) == expected:
                return PseudoBank(saved["content"], saved["targets"], path, built=False)
        content, targets = _guess_embeddings(env, settings)
        _save_bank(path, {"content": content, "targets": targets, "meta": meta})
    return PseudoBank(content, targets, path, built=True)


def _bank_key(env: DataFreeEnv, settings: ASDFDSettings) -> tuple[str, dict]:
    meta = {"v": BANK_VERSION, "teacher": env.teacher_fingerprint or _teacher_hash(env.teacher),
            "task": env.task.name, "num_labels": env.task.num_labels, "is_pair": env.task.is_pair,
            "cls_sep": [env.cls_id, env.sep_id], "special_ids": sorted(env.special_ids), "seed": env.seed,
            **settings.bank_settings()}
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:24], meta


def _teacher_hash(teacher: nn.Module) -> str:
    """SHA-256 over the teacher's tensors, for an environment without a teacher fingerprint."""
    digest = hashlib.sha256()
    for name, tensor in teacher.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().float().numpy().tobytes())
    return digest.hexdigest()


def _save_bank(path: Path, payload: dict) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path.parent / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(payload["meta"], indent=1)))
    _atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=path.suffix)
    os.close(handle)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _guess_embeddings(env: DataFreeEnv, settings: ASDFDSettings) -> tuple[Tensor, Tensor]:
    """Optimise ``[N, gen_length, H]`` content vectors towards their targets; returns CPU tensors."""
    import torch

    generator = torch.Generator().manual_seed(env.seed)
    table = env.teacher_embeddings
    content_ids = env.content_mask().nonzero().squeeze(1).cpu()
    count = settings.bank_per_class * env.task.num_labels
    picks = content_ids[torch.randint(len(content_ids), (count, settings.gen_length), generator=generator)]
    content = table[picks.to(table.device)].detach().float().clone()
    targets = torch.arange(env.task.num_labels, device=table.device).repeat_interleave(settings.bank_per_class)
    radius = _real_norm(env)
    for start in range(0, count, _BANK_CHUNK):
        chunk = slice(start, start + _BANK_CHUNK)
        content[chunk] = _optimise_chunk(env, settings, content[chunk], targets[chunk], radius)
    return content.cpu(), targets.cpu()


def _optimise_chunk(env: DataFreeEnv, settings: ASDFDSettings, content: Tensor, targets: Tensor,
                    radius: float) -> Tensor:
    """``bank_steps`` Adam steps on ``content [b, N, H]`` (gradients reach the vectors only)."""
    import torch

    vectors = content.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([vectors], lr=settings.bank_lr)
    with torch.enable_grad():
        for _ in range(settings.bank_steps):
            loss = _class_loss(env, vectors, targets, radius, settings.norm_weight)[0]
            (vectors.grad,) = torch.autograd.grad(loss, vectors)
            optimizer.step()
    return vectors.detach()


def _real_norm(env: DataFreeEnv) -> float:
    """Mean L2 norm of the teacher's content (non-special) word-embedding rows."""
    return float(env.teacher_embeddings[env.content_mask()].float().norm(dim=-1).mean())


def _class_loss(env: DataFreeEnv, content: Tensor, targets: Tensor, radius: float,
                norm_weight: float) -> tuple[Tensor, Tensor, Tensor]:
    """PPEG objective on ``content [B, N, H]``: ``CE(z_t, targets) + norm_weight * mean((||v|| - radius)^2)``.

    Returns:
        ``(loss, cross-entropy, teacher logits [B, C])``.
    """
    import torch.nn.functional as F

    from raykd.datafree.base import teacher_logits_from_embeds
    from raykd.datafree.samples import frame_content

    table = env.teacher_embeddings
    embeds, mask, types = frame_content(content.to(table.dtype), table, env)
    logits = teacher_logits_from_embeds(env.teacher, embeds, mask, types)
    ce = F.cross_entropy(logits, targets)
    penalty = (content.norm(dim=-1) - radius).pow(2).mean()
    return ce + norm_weight * penalty, ce, logits


# --- stage 2: adversarial self-supervised distillation ------------------------------------------


def ssl_transform(content: Tensor, ssl_task: str, generator) -> tuple[Tensor, Tensor]:
    """Transform a random half of ``content [B, N, D]``; label which rows were transformed.

    ``shuffle`` permutes a row's N content positions (never the identity); ``replace`` takes the
    second half of the content (positions ``N // 2`` on, the second segment of a pair) from
    another row of the batch. Differentiable in ``content``.

    Args:
        content: ``[B, N, D]`` content vectors (``B >= 2``, ``N >= 2``).
        ssl_task: ``shuffle`` or ``replace``.
        generator: a CPU ``torch.Generator`` (the trainer's own random stream).

    Returns:
        ``(transformed [B, N, D], labels [B])`` with labels 1 for transformed rows, 0 otherwise.
    """
    import torch

    batch, n, width = content.shape
    labels = torch.zeros(batch, dtype=torch.long)
    labels[torch.randperm(batch, generator=generator)[: batch // 2]] = 1
    chosen = labels.bool()
    if ssl_task == "shuffle":
        order = torch.argsort(torch.rand(batch, n, generator=generator), dim=1)
        same = (order == torch.arange(n)).all(dim=1)
        order[same] = order[same].roll(1, dims=1)
        order = torch.where(chosen[:, None], order, torch.arange(n)).to(content.device)
        out = content.gather(1, order[..., None].expand(-1, -1, width))
    elif ssl_task == "replace":
        donor = (torch.arange(batch) + torch.randint(1, batch, (batch,), generator=generator)) % batch
        swap = (chosen[:, None] & (torch.arange(n) >= n // 2)).to(content.device)
        out = torch.where(swap[..., None], content[donor.to(content.device)], content)
    else:
        raise ValueError(f"unknown ssl_task {ssl_task!r}; choose shuffle or replace")
    return out, labels.to(content.device)


def _fit_projection(projection: nn.Linear, teacher_table: Tensor, student_table: Tensor) -> nn.Linear:
    """Start ``projection`` as the least-squares map from the teacher's table to the student's own.

    Kept only when it explains at least 90% of the student table's variance (a BiLSTM table made
    by PCA of the teacher's: the student keeps that input map); otherwise (a random table, which
    no linear map of the teacher's rows fits) the projection keeps PyTorch's initialisation.

    Args:
        projection: ``Linear(H -> E)``, changed in place.
        teacher_table: ``[V, H]``; student_table: ``[V', E]`` (the first ``min(V, V')`` rows are fitted).
    """
    import torch

    rows = min(len(teacher_table), len(student_table))
    with torch.no_grad():
        x = teacher_table[:rows].double()
        x = torch.cat([x, torch.ones(rows, 1, dtype=x.dtype, device=x.device)], dim=1)
        y = student_table[:rows].double().to(x.device)
        solution = torch.linalg.lstsq(x.cpu(), y.cpu()).solution.to(x.device)  # [H + 1, E]
        residual = (x @ solution - y).pow(2).sum()
        if residual <= 0.1 * (y - y.mean(dim=0)).pow(2).sum():
            projection.weight.copy_(solution[:-1].T)
            projection.bias.copy_(solution[-1])
    return projection


class ASDFDTrainer:
    """AS-DFD stage 2 as a :class:`~raykd.datafree.base.DataFreeTrainer` (see the module docstring).

    Attributes:
        settings: the trial's settings.
        env: the data-free environment.
        student_modules: ``ssl_head`` (``Linear(feature_dim -> 2)``, trained, not deployed) and,
            for a student of embedding width ``E != H``, ``projection`` (``Linear(H -> E)``,
            deployed and counted with the student).
        bank: ``[N, gen_length, H]`` float32 pseudo content vectors on ``env.device``: this trial's
            copy of the PPEG bank, adapted adversarially.
        targets: ``[N]`` long target classes.
        bank_path: the cached bank file, or None.
        bank_built_here: True when this trainer optimised the bank itself (False: read from cache).
    """

    def __init__(self, settings: ASDFDSettings, env: DataFreeEnv, student: nn.Module, bank: PseudoBank):
        import torch
        from torch import nn

        self.settings, self.env = settings, env
        self.bank = bank.content.to(env.device, torch.float32)
        self.targets = bank.targets.to(env.device)
        self.bank_path, self.bank_built_here = bank.path, bank.built
        self.student_modules: dict[str, nn.Module] = {"ssl_head": nn.Linear(student.feature_dim, 2).to(env.device)}
        width = int(student.embedding.weight.shape[1])
        if width != env.hidden_size:
            self.student_modules["projection"] = _fit_projection(
                nn.Linear(env.hidden_size, width).to(env.device), env.teacher_embeddings, student.embedding.weight)
        self._radius = _real_norm(env)
        self._exp_avg = torch.zeros_like(self.bank)  # adversarial Adam moments, one per bank entry
        self._exp_avg_sq = torch.zeros_like(self.bank)
        self._adv_count = torch.zeros(len(self.targets), dtype=torch.long, device=env.device)
        self._rng = torch.Generator().manual_seed(env.seed)

    def make_batch(self, content: Tensor) -> GeneratedBatch:
        """Frame ``content [B, N, H]`` with the teacher's real ``[CLS]``/``[SEP]`` rows for both models.

        The student reads the framed teacher-space sequence through ``projection`` when there is
        one, so it reads every position (content and special tokens) through the same map that
        :meth:`prepare_student` writes into its table; its own table is not used in training.
        """
        from raykd.datafree.samples import GeneratedBatch, frame_content

        table = self.env.teacher_embeddings
        teacher_embeds, mask, types = frame_content(content.to(table.dtype), table, self.env)
        projection = self.student_modules.get("projection")
        student_embeds = projection(teacher_embeds.float()) if projection is not None else teacher_embeds
        return GeneratedBatch(teacher_embeds, student_embeds, mask, types)

    def prepare_student(self, student: nn.Module) -> None:
        """Write ``map(teacher row)`` into each row of the student's word-embedding table.

        ``map`` is ``projection`` (or the identity), the map through which the student reads pseudo
        samples; afterwards ``student(ids)`` reads token ``t`` as ``map(E_teacher[t])``, as in
        training, so the student runs on real text with no extra module. The table gets no
        gradient in training (pseudo samples bypass it), so overwriting it loses nothing.
        :func:`~raykd.datafree.loop.fit_data_free` calls this every epoch, before it evaluates and
        saves the student.
        """
        import torch

        weight = student.embedding.weight
        rows = min(weight.shape[0], self.env.vocab_size)
        projection = self.student_modules.get("projection")
        with torch.no_grad():
            table = self.env.teacher_embeddings[:rows].float()
            weight[:rows] = (projection(table) if projection is not None else table).to(weight.dtype)

    def generator_steps(self, student: nn.Module, step: int) -> dict[str, float]:
        """Adversarially update a random batch of bank rows after every ``adv_steps`` student steps.

        The rows take one Adam(``adv_lr``) step on ``-L_ssl + CE(z_t, target) + norm_weight *
        penalty``; only the rows get gradients (not the student, not the teacher).

        Returns:
            ``adv_loss_ssl``, ``adv_teacher_ce`` (nats) and ``adv_target_accuracy`` before the
            step, or ``{}`` when the schedule skips this step.
        """
        import torch
        import torch.nn.functional as F

        if step == 0 or step % self.settings.adv_steps:
            return {}
        idx = self._sample()
        rows = self.bank[idx].clone().requires_grad_(True)
        with torch.enable_grad():
            transformed, labels = ssl_transform(rows, self.settings.ssl_task, self._rng)
            _, features = self.make_batch(transformed).student_logits(student, return_features=True)
            ssl = F.cross_entropy(self.student_modules["ssl_head"](features).float(), labels)
            class_loss, ce, logits = _class_loss(self.env, rows, self.targets[idx], self._radius,
                                                 self.settings.norm_weight)
            (grad,) = torch.autograd.grad(class_loss - ssl, rows)
        self._adam_step(idx, grad)
        return {"adv_loss_ssl": ssl.item(), "adv_teacher_ce": ce.item(),
                "adv_target_accuracy": float((logits.argmax(-1) == self.targets[idx]).float().mean())}

    def _adam_step(self, idx: Tensor, grad: Tensor) -> None:
        """Adam on the rows ``idx`` of the bank only (per-row step counts for bias correction)."""
        beta1, beta2 = _BETAS
        self._adv_count[idx] += 1
        count = self._adv_count[idx].to(grad.dtype)[:, None, None]
        exp_avg = beta1 * self._exp_avg[idx] + (1 - beta1) * grad
        exp_avg_sq = beta2 * self._exp_avg_sq[idx] + (1 - beta2) * grad * grad
        self._exp_avg[idx], self._exp_avg_sq[idx] = exp_avg, exp_avg_sq
        update = (exp_avg / (1 - beta1**count)) / ((exp_avg_sq / (1 - beta2**count)).sqrt() + _EPS)
        self.bank[idx] = self.bank[idx] - self.settings.adv_lr * update

    def student_loss(self, student: nn.Module, step: int) -> tuple[Tensor, dict[str, float]]:
        """``D(z_s, z_t) + ssl_weight * L_ssl`` on a random bank batch (teacher under no_grad).

        The student reads the batch and its SSL-transformed copy in one forward pass.

        Returns:
            ``(loss, {"loss_kd", "loss_ssl", "ssl_accuracy"})``.
        """
        import torch
        import torch.nn.functional as F

        from raykd.datafree.base import teacher_logits_from_embeds
        from raykd.losses import discrepancy

        content = self.bank[self._sample()]
        transformed, labels = ssl_transform(content, self.settings.ssl_task, self._rng)
        both = self.make_batch(torch.cat([content, transformed]))
        size = len(content)
        with torch.no_grad():
            z_t = teacher_logits_from_embeds(self.env.teacher, both.teacher_embeds[:size], both.attention_mask[:size],
                                             both.token_type_ids[:size])
        z_s, features = both.student_logits(student, return_features=True)
        kd = discrepancy(self.settings.kd_loss, z_s[:size].float(), z_t, self.settings.temperature)
        ssl_logits = self.student_modules["ssl_head"](features[size:]).float()
        ssl = F.cross_entropy(ssl_logits, labels)
        loss = kd + self.settings.ssl_weight * ssl if self.settings.ssl_weight > 0 else kd
        return loss, {"loss_kd": kd.item(), "loss_ssl": ssl.item(),
                      "ssl_accuracy": float((ssl_logits.argmax(-1) == labels).float().mean())}

    def _sample(self) -> Tensor:
        """Distinct bank indices ``[b]``, ``b = min(batch_size, N)`` (at least 2 for the SSL pairs)."""
        import torch

        count = len(self.targets)
        size = max(2, min(self.env.batch_size, count))
        return torch.randperm(count, generator=self._rng)[:size].to(self.bank.device)

    def diagnostics(self, student: nn.Module) -> tuple[dict[str, float], str]:
        """Teacher/student figures on up to 512 class-balanced bank samples, and a text sample.

        Returns:
            :func:`~raykd.datafree.samples.class_diagnostics` plus ``bank_target_accuracy`` (share
            of those samples the teacher puts in their target class) and ``bank_norm_ratio``
            (mean content-vector norm over the real rows' mean norm); the text shows 8 samples
            as their nearest vocabulary tokens (cosine), with target and teacher label.
        """
        import torch

        from raykd.datafree.samples import (
            class_diagnostics,
            describe_samples,
            nearest_tokens,
        )

        order = self._balanced_order()[:_DIAG_LIMIT]
        z_t, z_s = [], []
        with torch.no_grad():
            for chunk in order.split(max(2, self.env.batch_size)):
                batch = self.make_batch(self.bank[chunk])
                z_t.append(batch.teacher_logits(self.env))
                z_s.append(batch.student_logits(student).float())
            z_t, z_s = torch.cat(z_t), torch.cat(z_s)
            metrics = class_diagnostics(z_t, z_s)
            metrics["bank_target_accuracy"] = float((z_t.argmax(-1) == self.targets[order]).float().mean())
            metrics["bank_norm_ratio"] = float(self.bank[order].norm(dim=-1).mean() / self._radius)
            shown = order[:8]
            ids = nearest_tokens(self.make_batch(self.bank[shown]).teacher_embeds, self.env.teacher_embeddings)
        text = describe_samples(ids, list(self.env.tokens), z_t[:8], self.env.task.label_names)
        names = self.env.task.label_names
        lines = [f"target {names[int(t)]} | {line}" for t, line in zip(self.targets[shown].tolist(), text.splitlines())]
        return metrics, "\n".join(lines)

    def _balanced_order(self) -> Tensor:
        """Bank indices with classes interleaved (class 0, 1, ..., 0, 1, ...)."""
        import torch

        count, classes = len(self.targets), self.env.task.num_labels
        return torch.arange(count, device=self.bank.device).view(classes, count // classes).T.reshape(-1)

    def state_dict(self) -> dict[str, Any]:
        """The adapted bank, targets, adversarial Adam state and random stream (CPU copies)."""
        tensors = {"bank": self.bank, "targets": self.targets, "adv_exp_avg": self._exp_avg,
                   "adv_exp_avg_sq": self._exp_avg_sq, "adv_count": self._adv_count}
        return {**{name: t.to("cpu", copy=True) for name, t in tensors.items()}, "rng": self._rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (copies it: the trainer mutates its bank in place).

        Raises:
            ValueError: the saved bank's shape differs from this trainer's.
        """
        if tuple(state["bank"].shape) != tuple(self.bank.shape):
            raise ValueError(f"as_dfd: saved bank has shape {tuple(state['bank'].shape)}, "
                             f"this trial's has {tuple(self.bank.shape)}")
        device = self.bank.device
        self.bank, self.targets, self._exp_avg, self._exp_avg_sq, self._adv_count = (
            state[name].to(device, copy=True) for name in ("bank", "targets", "adv_exp_avg", "adv_exp_avg_sq",
                                                            "adv_count"))
        self._rng.set_state(state["rng"])


def make_trainer(params: dict, env: DataFreeEnv, student: nn.Module) -> ASDFDTrainer:
    """Build (or read from the cache) the PPEG bank and the stage-2 trainer for one trial.

    Args:
        params: the trial's ``as_dfd`` settings (omitted ones take their defaults).
        env: the data-free environment (frozen teacher, task, cache folder).
        student: the student (``embedding`` and ``feature_dim`` are read).

    Raises:
        RaykdInputError: bad settings, a regression task, too long a ``gen_length``, or a student
            of another embedding width without ``projection``.
    """
    settings = ASDFDSettings.from_params(params)
    check_task(env.task)
    _check_length(settings, env)
    width = int(student.embedding.weight.shape[1])
    if width != env.hidden_size and not settings.projection:
        raise RaykdInputError(_width_message(env.hidden_size, type(student).__name__, width))
    return ASDFDTrainer(settings, env, student, build_bank(env, settings))
