"""``generation``: generation-distillation, KD on a transfer set written by a language model.

Paper: Melas-Kyriazi, Han & Liang 2019, "Generation-Distillation for Efficient Natural Language
Understanding in Low-Data Settings" (arXiv 2002.00733, DeepLo 2019). In a low-data setting a
language model fine-tuned on the task's training text writes new unlabelled examples, the teacher
labels them, and a small student distils on the original plus generated examples. Closest public
code: Tang, Lu & Lin 2019 (castorini/d-bert): GPT-2 fine-tuned on the training text (one example per
sequence, end-of-text appended, pairs joined by a separator), ancestral sampling from a first token
drawn from the training set's first-token distribution, pair samples kept only with the separator.

raykd's pipeline (:mod:`raykd.transfer.generate`): train or fine-tune the generator on the
(``data.train_size``) training text, sample ``min(round(multiple x |train|), max_samples)``
examples (``max_samples: 0``: no cap) with ``top_k`` / ``top_p`` / ``sample_temperature`` from a
``first_token`` or ``prefix`` prompt, drop duplicates (within and against train), label them with
the teacher, add them to the training split, and minimise the soft-target objective of
:mod:`raykd.methods.vanilla` (``alpha``'s gold-label term sees only the original examples).
``augment: tang`` adds Tang et al.'s augmented set as well (generation + augmentation).

What is cached, and where (under the sweep storage's ``cache/``, shared by trials and sweeps):

- ``generators/<key>/``: the trained generator (:mod:`raykd.transfer.generators`), one per
  :data:`GENERATOR_SETTINGS` combination (with the training data, teacher tokenizer or
  pretrained weights, OOD corpus and seed). Every sampling setting reuses it; each training adds a
  line to ``generators/builds.log``.
- ``transfer_sets/<key>/``: the labelled samples (:mod:`raykd.transfer.store`), one per generator
  setting x sampling setting x ``multiple`` / ``max_samples``; its ``meta.json`` carries the
  generator's training statistics and key.

``raykd validate`` prints the planned sample counts per task and how many generator trainings the
space can cause (:func:`plan_lines`).

Where raykd departs from the paper: the paper's settings (GPT-2 size, sampling, volume, student,
loss) could not be read and are searchable here; without a pretrained GPT-2 (as on machines with
no model hub) ``generator: scratch`` trains a small GPT-2-shaped model from scratch, through the
same code path, on the training text (optionally pre-trained on ``data.ood`` first,
``gen_pretrain_ood``), so it knows far less English than GPT-2. An unset ``gen_lr`` follows the
generator (d-bert's 5e-5 for a pretrained model, 1e-3 from scratch). The sample volume can be
capped per task (``max_samples``), so one space fits tasks of very different sizes. The generator
is trained once per generator setting and the samples are built once per setting, shared by trials
instead of per run.

Example search-space entry::

    methods:
      generation: {multiple: [5, 20], max_samples: 2000, top_p: [0.9, 1.0], gen_epochs: [10, 30],
                   augment: [none, tang]}
"""

from __future__ import annotations

from raykd.domains import ParamSpec
from raykd.methods import vanilla
from raykd.methods.vanilla import KD_PARAMS, VanillaKD
from raykd.transfer.sets import TANG_PARAMS, tang_request

__all__ = ["PARAMS", "ARMS", "GENERATOR_SETTINGS", "make_method", "active", "transfer_requests", "check_space",
           "check_data", "plan_lines"]

GENERATOR_PARAMS = {
    "generator": ParamSpec(str, "scratch", "causal-LM folder or hub id to fine-tune, or 'scratch' for a small "
                           "GPT-2-shaped model trained from scratch on the training text", searchable=True),
    "gen_layers": ParamSpec(int, 2, "scratch generator: transformer layers", low=1),
    "gen_dim": ParamSpec(int, 128, "scratch generator: hidden width (a multiple of gen_heads)", low=8),
    "gen_heads": ParamSpec(int, 2, "scratch generator: attention heads", low=1),
    "gen_epochs": ParamSpec(int, 10, "generator passes over the training text", low=1),
    "gen_lr": ParamSpec(float, 0.0, "generator peak learning rate; 0: by generator, 5e-5 for a pretrained "
                        "causal LM, 1e-3 for scratch", low=0),
    "gen_pretrain_ood": ParamSpec(bool, False, "pre-train the generator on data.ood before the training text"),
    "multiple": ParamSpec(float, 10.0, "generated examples per training example", low=0, low_open=True),
    "max_samples": ParamSpec(int, 0, "at most this many generated examples per task (0: no cap)", low=0),
    "top_k": ParamSpec(int, 0, "sample from the k most likely tokens (0: all)", low=0),
    "top_p": ParamSpec(float, 1.0, "nucleus sampling mass (1: off)", low=0, low_open=True, high=1),
    "sample_temperature": ParamSpec(float, 1.0, "softmax temperature of sampling (1: ancestral)", low=0, low_open=True),
    "prompt": ParamSpec(str, "first_token", "first_token: one token from the training set's first-token "
                        "distribution; prefix: the first prefix_tokens tokens of a training example",
                        choices=("first_token", "prefix")),
    "prefix_tokens": ParamSpec(int, 2, "prompt prefix: tokens taken from a training example", low=1),
    "dedup": ParamSpec(bool, True, "drop generated examples equal to a training example or to each other"),
}

PARAMS = {**KD_PARAMS, **GENERATOR_PARAMS, **TANG_PARAMS}

ARMS = ("augment",)
"""Settings whose every choice a sweep tries once before Optuna's sampler takes over."""

GENERATOR_SETTINGS = ("generator", "gen_layers", "gen_dim", "gen_heads", "gen_epochs", "gen_lr", "gen_pretrain_ood")
"""The settings that change the trained generator (each combination is one training); the others only
change how it is sampled."""

_SCRATCH_ONLY = {"gen_layers", "gen_dim", "gen_heads"}
_MAX_TOKENS = 64
_GEN_BATCH = 32


def active(chosen: dict) -> set[str]:
    """Settings that exist given those chosen so far: vanilla's rules, the scratch size only for
    ``scratch``, ``prefix_tokens`` only for the ``prefix`` prompt."""
    names = vanilla.active(chosen, set(PARAMS))
    if chosen.get("generator", "scratch") != "scratch":
        names -= _SCRATCH_ONLY
    if chosen.get("prompt", "first_token") != "prefix":
        names.discard("prefix_tokens")
    return names


def check_space(domains: dict, teacher_config: dict) -> None:
    """Refuse, before Ray starts, generators that cannot be built.

    Raises:
        RaykdInputError: some ``gen_dim`` choice is not divisible by some ``gen_heads`` choice; a
            ``generator`` that is neither ``scratch``, a folder, nor (with a hub) a hub id.
    """
    import os
    from pathlib import Path

    from raykd.domains import domain_values
    from raykd.errors import RaykdInputError

    for path in domain_values(domains["generator"]):
        if path == "scratch" or Path(path).expanduser().is_dir():
            continue
        if path.startswith((".", "/", "~")) or os.environ.get("HF_HUB_OFFLINE") == "1":
            raise RaykdInputError(f"methods.generation.generator {path!r} is not a folder (and the model hub is "
                                  "off); give a causal-LM folder, a hub id with a network, or 'scratch'")

    for dim in domain_values(domains["gen_dim"]):
        for heads in domain_values(domains["gen_heads"]):
            if int(dim) % int(heads):
                raise RaykdInputError(f"methods.generation: gen_dim {dim} is not a multiple of gen_heads {heads}; "
                                      "choose widths divisible by every head count")


def check_data(domains: dict, data) -> None:
    """Refuse ``gen_pretrain_ood: true`` without ``data.ood``, before Ray starts.

    Raises:
        RaykdInputError: pre-training asked for and no corpus given.
    """
    from raykd.domains import domain_values
    from raykd.errors import RaykdInputError

    if True in domain_values(domains["gen_pretrain_ood"]) and not data.ood:
        raise RaykdInputError("methods.generation.gen_pretrain_ood needs an unlabelled corpus: set data.ood "
                              "(for example ../shared/data/glue/QNLI/dev.tsv with ood_text_column: sentence)")


def transfer_requests(params: dict) -> list[tuple[str, dict]]:
    """The generated set (and the Tang set with ``augment: tang``) this trial adds to the training split.

    The generation settings are the cache key: trials that differ only in student or KD settings
    share one generated set. ``gen_lr: 0`` is resolved here (by generator kind), so an unset and an
    explicit equal learning rate share one generator and one set.
    """
    from raykd.transfer.generators import default_lr

    def value(name):
        return params.get(name, PARAMS[name].default)

    scratch = value("generator") == "scratch"
    generator = {"path": value("generator"), "epochs": value("gen_epochs"),
                 "lr": value("gen_lr") or default_lr(value("generator")),
                 "batch_size": _GEN_BATCH, "max_tokens": _MAX_TOKENS}
    if scratch:
        generator.update(layers=value("gen_layers"), dim=value("gen_dim"), heads=value("gen_heads"))
    sampling = {"top_k": value("top_k"), "top_p": value("top_p"), "temperature": value("sample_temperature"),
                "prompt": value("prompt"), "dedup": value("dedup")}
    if sampling["prompt"] == "prefix":
        sampling["prefix_tokens"] = value("prefix_tokens")
    generation = {"generator": generator, "sampling": sampling, "multiple": value("multiple"),
                  "pretrain_ood": value("gen_pretrain_ood")}
    if value("max_samples"):  # absent when uncapped: sets built before the cap existed keep their keys
        generation["max_samples"] = value("max_samples")
    return [("generation", generation), *tang_request(params)]


def plan_lines(domains: dict, train_rows: int, trials: int) -> list[str]:
    """What ``raykd validate`` prints for one task: the generated examples per set, and the trainings.

    Args:
        domains: the space's ``generation`` settings, a :data:`~raykd.domains.Domain` per name.
        train_rows: examples in the task's training split (after ``data.train_size``).
        trials: the sweep's trial budget, a bound on the trainings a searched range can cause.

    Returns:
        Two lines: the sample count of every ``multiple`` value (a range: its ends) under every
        ``max_samples`` value, and the most generator trainings the space can cause (one per
        :data:`GENERATOR_SETTINGS` combination; sampling settings reuse them).
    """
    from raykd.domains import Range, domain_values
    from raykd.transfer.generators import sample_count

    multiples = domain_values(domains["multiple"])
    caps = domain_values(domains["max_samples"])
    per_cap = []
    for cap in caps:
        counts = ", ".join(f"{m:g}x -> {sample_count(m, int(cap), train_rows):,}" for m in multiples)
        per_cap.append(counts + (f" (max_samples {int(cap):,})" if cap else " (no cap)" if len(caps) > 1 else ""))
    ends = " (multiple's range ends)" if isinstance(domains["multiple"], Range) else ""
    combos = _generator_combinations(domains)
    bound = (f"{trials} (one per trial: a generator setting is a continuous range)" if combos is None
             else f"{min(combos, trials)} ({combos} generator setting combination(s), {trials} trials)")
    return [f"generation: {train_rows:,} training examples -> generated per set{ends}: " + "; ".join(per_cap),
            f"  generator trainings: at most {bound}; sampling settings reuse a trained generator"]


def _generator_combinations(domains: dict) -> int | None:
    """Distinct generators the space can train (None when a float range makes them unbounded)."""
    from raykd.domains import domain_values

    total = 0
    for path in domain_values(domains["generator"]):
        count = 1
        for name in GENERATOR_SETTINGS[1:]:
            if name in _SCRATCH_ONLY and path != "scratch":
                continue
            size = _distinct(domains[name], path if name == "gen_lr" else None)
            if size is None:
                return None
            count *= size
        total += count
    return total


def _distinct(domain, lr_path: str | None) -> int | None:
    """Values a domain can take (None: a float range); ``lr_path`` resolves ``gen_lr: 0`` first."""
    from raykd.domains import Choice, Range
    from raykd.transfer.generators import default_lr

    if isinstance(domain, Range):
        return int((domain.high - domain.low) // (domain.step or 1)) + 1 if domain.is_int else None
    values = domain.values if isinstance(domain, Choice) else (domain.value,)
    return len({v or default_lr(lr_path) for v in values} if lr_path is not None else set(values))


def make_method(params: dict, task) -> VanillaKD:
    """The soft-target objective of a trial's resolved ``generation`` settings (vanilla's)."""
    return vanilla.make_method(params, task, name="generation")
