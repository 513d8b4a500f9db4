"""Generation-distillation transfer sets: a causal LM trained on the training text, then sampled.

Melas-Kyriazi et al. 2019, "Generation-Distillation for Efficient Natural Language Understanding
in Low-Data Settings" (arXiv 2002.00733), fine-tune GPT-2 on the few labelled training texts,
sample many new texts from it and let the teacher label them for the student. The closest public
code is Tang, Lu & Lin 2019 (castorini/d-bert, ``dbert/generate/finetune_gpt.py`` and
``sample_gpt.py``), which this module follows:

1. one example per sequence, end-of-text appended; a sentence pair is ``a <sep> b <eos>``;
   at most ``max_tokens`` tokens, end-of-text included;
2. causal-LM training with AdamW, linear warm-up over the first 10% of the steps then linear
   decay to zero, weight decay, token cross-entropy on real (unpadded) tokens;
3. ancestral sampling, each sample starting from a first token drawn from the empirical
   distribution of the training examples' first tokens (d-bert's ``PrefixSampler``);
4. pair samples are kept only when they contain the separator.

Two generator sources share one code path (:meth:`Generator.train`):

- ``path`` = a causal-LM folder or hub id: its own tokenizer and weights, fine-tuned. End-of-text
  is ``eos_token_id`` (else ``sep_token_id``). The pair separator is the tokenizer's single token
  for ``"\\t"`` (GPT-2's ``\\t`` byte, as in d-bert); a tokenizer that drops whitespace (BERT's)
  gets a dedicated special token ``[TAB]`` (``add_special_tokens`` + ``resize_token_embeddings``).
- ``path`` = ``"scratch"``: a GPT-2-shaped model (``GPT2Config``: ``layers``, ``dim``, ``heads``,
  ``n_positions = max_tokens``) trained from random weights, reading the teacher's WordPiece
  tokens through a compact vocabulary (see below).

Where raykd departs from the paper and d-bert:

- With no pretrained generator available, the from-scratch GPT-2-shaped generator stands in for
  GPT-2. It knows only the training text (and, optionally, ``pretrain_texts``: an unlabelled,
  e.g. out-of-domain, corpus it first trains on for ``epochs`` epochs before ``epochs`` epochs on
  the task text, the "general LM, then task" order of GPT-2 -> task), so its samples recombine
  the training vocabulary rather than bring new words.
- Compact WordPiece vocabulary: the scratch generator's rows are only the teacher token ids that
  occur in its training corpora plus end-of-text (and the pair separator for pairs); a 30k-row
  embedding for ~10k training tokens would be mostly untrained. Samples are mapped back to teacher
  ids and decoded with the teacher tokenizer (``skip_special_tokens``, cleaned-up spaces).
- Sampling settings (``top_k``, ``top_p``, ``temperature``, the prompt) are searchable; d-bert
  samples plainly (the defaults here: ``top_k=0``, ``top_p=1``, ``temperature=1``).
  ``prompt="prefix"`` starts from the first ``prefix_tokens`` tokens of a random training example.
- No weight decay on any 1-D parameter (biases and LayerNorm gains; d-bert spares biases only),
  and the gradient norm is clipped at 1 (d-bert does not clip).
- Pair truncation is longest-side-first so the separator and end-of-text always survive (d-bert
  cuts the joined sequence at 128 tokens).
- Samples that reach ``max_tokens`` without end-of-text are discarded (counted as ``truncated``):
  a sentence cut mid-way is not one the training text contains.
- A pair sample's ``text_b`` is the text between the first and a possible second separator.
- Samples are deduplicated (lowercased, whitespace collapsed) among themselves and against the
  training texts; the set size is chosen by the caller (a multiple of the training set, optionally
  capped), with at most ``4 * n`` draws.
- A trained generator is saved (:meth:`Generator.save`) and cached once per generator setting by
  :mod:`raykd.transfer.generators`, so every sampling setting draws from the same weights; d-bert
  fine-tunes once and samples once.
- An unset learning rate follows the generator's kind (:func:`~raykd.transfer.generator_kinds.default_lr`):
  d-bert's 5e-5 for a pretrained path, 1e-3 from scratch.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from raykd.errors import RaykdInputError
from raykd.transfer.generator_kinds import SCRATCH, default_lr

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GeneratedSet", "Generator", "GeneratorSettings", "SamplingSettings", "generate_transfer_set",
           "text_column"]

PROMPTS = ("first_token", "prefix")
_TAB_TOKEN = "[TAB]"
_WARMUP = 0.1
_CLIP_NORM = 1.0
_DRAWS_PER_SAMPLE = 4
_PROGRESS_SECONDS = 5.0
_SPACES = re.compile(r"\s+")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RaykdInputError(message)


@dataclass(frozen=True)
class GeneratorSettings:
    """How the generator is built and trained.

    Attributes:
        path: a causal-LM folder or hub id to fine-tune, or ``"scratch"``.
        layers: scratch size: GPT-2 ``n_layer``.
        dim: scratch width: ``n_embd``.
        heads: scratch attention heads: ``n_head`` (must divide ``dim``).
        epochs: passes over the task text (and, first, over ``pretrain_texts`` when given).
        lr: peak AdamW learning rate; None (the default) resolves by kind to 1e-3 from scratch or
            5e-5 for a pretrained path (:func:`~raykd.transfer.generator_kinds.default_lr`).
        batch_size: examples per optimiser step.
        max_tokens: longest sequence in tokens, end-of-text included.
        weight_decay: AdamW decay on matrices (none on biases / LayerNorm).
    """

    path: str = SCRATCH
    layers: int = 2
    dim: int = 128
    heads: int = 2
    epochs: int = 10
    lr: float | None = None
    batch_size: int = 32
    max_tokens: int = 64
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        if self.lr is None:  # frozen: resolve once, so the cache key and the optimiser see one value
            object.__setattr__(self, "lr", default_lr(self.path))
        for name in ("layers", "dim", "heads", "epochs", "batch_size"):
            _require(getattr(self, name) >= 1, f"generator {name} must be >= 1, got {getattr(self, name)}")
        _require(self.dim % self.heads == 0, f"generator heads ({self.heads}) must divide dim ({self.dim})")
        _require(self.max_tokens >= 2, f"generator max_tokens must be >= 2 (a token and end-of-text), "
                                       f"got {self.max_tokens}")
        _require(self.lr > 0, f"generator lr must be > 0, got {self.lr}")
        _require(self.weight_decay >= 0, f"generator weight_decay must be >= 0, got {self.weight_decay}")
        _require(bool(self.path), "generator path must be a model folder, a hub id or 'scratch'")


@dataclass(frozen=True)
class SamplingSettings:
    """How samples are drawn and filtered.

    Attributes:
        top_k: keep the k most likely tokens per step; 0 = off.
        top_p: nucleus sampling mass in (0, 1]; 1.0 = off.
        temperature: logit divisor > 0; 1.0 = plain ancestral sampling.
        prompt: ``"first_token"`` (one token from the training first-token distribution) or
            ``"prefix"`` (the first ``prefix_tokens`` tokens of a random training example).
        prefix_tokens: prompt length for ``"prefix"``.
        dedup: drop samples equal to a training text or to an earlier sample.
        batch_size: samples per ``generate`` call.
    """

    top_k: int = 0
    top_p: float = 1.0
    temperature: float = 1.0
    prompt: str = "first_token"
    prefix_tokens: int = 2
    dedup: bool = True
    batch_size: int = 128

    def __post_init__(self) -> None:
        _require(self.prompt in PROMPTS, f"sampling prompt must be one of {PROMPTS}, got {self.prompt!r}")
        _require(self.prefix_tokens >= 1, f"sampling prefix_tokens must be >= 1, got {self.prefix_tokens}")
        _require(0 < self.top_p <= 1, f"sampling top_p must be in (0, 1], got {self.top_p}")
        _require(self.temperature > 0, f"sampling temperature must be > 0, got {self.temperature}")
        _require(self.top_k >= 0, f"sampling top_k must be >= 0 (0 = off), got {self.top_k}")
        _require(self.batch_size >= 1, f"sampling batch_size must be >= 1, got {self.batch_size}")


@dataclass
class GeneratedSet:
    """Kept samples and what happened on the way.

    Attributes:
        frame: ``text_a`` (and ``text_b`` for pairs), one row per kept sample, in draw order.
        stats: ``requested``, ``drawn`` (samples examined: ``kept + duplicates + no_separator +
            empty + truncated``), ``kept``, ``duplicates``, ``no_separator``, ``empty``,
            ``truncated`` (no end-of-text within ``max_tokens``), ``generator_params``,
            ``vocab_size``, ``first_epoch_loss`` / ``final_train_loss`` (nats per token, task
            text), ``pretrain_loss`` (last pre-training epoch, when pre-trained),
            ``train_seconds`` (when the generator was trained, also for a cached one), ``sample_seconds``.
    """

    frame: pd.DataFrame
    stats: dict[str, float]


# --- text <-> model ids --------------------------------------------------------------------------


def _tokenize(tokenizer, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Tokenizer ids per text, no special tokens, at most ``max_tokens`` each."""
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_tokens)
    return [list(ids) for ids in encoded["input_ids"]]


class _CompactCodec:
    """Teacher WordPiece ids <-> compact ids ``[eos, (sep,) corpus tokens in teacher-id order]``.

    Args:
        tokenizer: the teacher's tokenizer.
        teacher_ids: the teacher ids the vocabulary keeps (see :meth:`of_corpus`).
        pairs: reserve a pair-separator id.
    """

    def __init__(self, tokenizer, teacher_ids: Sequence[int], pairs: bool):
        self.tokenizer = tokenizer
        self.eos, self.sep = 0, (1 if pairs else None)
        self.offset = 2 if pairs else 1
        self.teacher_ids = np.array(sorted(set(teacher_ids)), dtype=np.int64)
        self.compact = {int(t): i + self.offset for i, t in enumerate(self.teacher_ids)}
        self.size = self.offset + len(self.teacher_ids)
        self.pad = self.eos

    @classmethod
    def of_corpus(cls, tokenizer, corpus: Sequence[Sequence[int]], pairs: bool) -> _CompactCodec:
        """The codec of every teacher id in ``corpus`` (the task and pre-training texts' ids)."""
        return cls(tokenizer, [t for ids in corpus for t in ids], pairs)

    def state(self) -> dict:
        """What :func:`_codec_from_state` rebuilds it from (with the teacher's tokenizer)."""
        return {"kind": "compact", "pairs": self.sep is not None, "teacher_ids": self.teacher_ids.tolist()}

    def to_model(self, ids: Sequence[int]) -> list[int]:
        """Teacher ids -> compact ids (every id must occur in the corpus)."""
        return [self.compact[t] for t in ids]

    def decode(self, ids: Sequence[int]) -> str:
        """Compact ids of one segment -> text (special and reserved ids dropped)."""
        teacher = [int(self.teacher_ids[i - self.offset]) for i in ids if i >= self.offset]
        return self.tokenizer.decode(teacher, skip_special_tokens=True, clean_up_tokenization_spaces=True)


class _TokenizerCodec:
    """A pretrained causal LM's own tokenizer; model ids are tokenizer ids.

    Args:
        tokenizer: the model's tokenizer (a ``[TAB]`` special token may be added to it).
        pairs: find or add the pair separator.
    """

    def __init__(self, tokenizer, pairs: bool):
        self.tokenizer = tokenizer
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        _require(eos is not None, "the generator's tokenizer has neither an eos nor a sep token")
        self.eos, self.pad = eos, eos
        self.sep = self._separator(tokenizer) if pairs else None
        self.size = len(tokenizer)

    def state(self) -> dict:
        """What :func:`_codec_from_state` rebuilds it from (with the saved tokenizer, ``[TAB]`` included)."""
        return {"kind": "tokenizer", "pairs": self.sep is not None}

    @staticmethod
    def _separator(tokenizer) -> int:
        """The single token of ``"\\t"``, else a new ``[TAB]`` special token's id."""
        tab = tokenizer("\t", add_special_tokens=False)["input_ids"]
        if len(tab) == 1 and tokenizer.decode(tab) == "\t":
            return tab[0]
        tokenizer.add_special_tokens({"additional_special_tokens": [_TAB_TOKEN]})
        return tokenizer.convert_tokens_to_ids(_TAB_TOKEN)

    def to_model(self, ids: Sequence[int]) -> list[int]:
        """Identity: tokenizer ids are model ids."""
        return list(ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Ids of one segment -> text."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=True)


def _codec_from_state(state: dict, tokenizer):
    """The codec :meth:`_CompactCodec.state` or :meth:`_TokenizerCodec.state` describes."""
    if state["kind"] == "compact":
        return _CompactCodec(tokenizer, state["teacher_ids"], state["pairs"])
    return _TokenizerCodec(tokenizer, state["pairs"])


def _fit_pair(a: list[int], b: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Cut the longer side first until ``len(a) + len(b) <= budget``."""
    while len(a) + len(b) > budget:
        if len(a) >= len(b):
            a = a[:-1]
        else:
            b = b[:-1]
    return a, b


def _examples(codec, a_ids: list[list[int]], b_ids: list[list[int]] | None, max_tokens: int) -> list[list[int]]:
    """Model-id sequences ``a <eos>`` or ``a <sep> b <eos>`` (examples with no content dropped)."""
    out = []
    for i, a in enumerate(a_ids):
        if b_ids is None:
            a, b = a[:max_tokens - 1], []
            ids = codec.to_model(a) + [codec.eos]
        else:
            a, b = _fit_pair(a, b_ids[i], max_tokens - 2)
            ids = codec.to_model(a) + [codec.sep] + codec.to_model(b) + [codec.eos]
        if a or b:
            out.append(ids)
    return out


def _normalise(text: str) -> str:
    return _SPACES.sub(" ", text).strip().lower()


def _split(codec, content: list[int]) -> list[str] | None:
    """One sample's ids before end-of-text -> its stripped text(s); None when a pair lacks the separator."""
    if codec.sep is None:
        return [codec.decode(content).strip()]
    if codec.sep not in content:
        return None
    cut = content.index(codec.sep)
    rest = content[cut + 1:]
    second = rest[:rest.index(codec.sep)] if codec.sep in rest else rest
    return [codec.decode(content[:cut]).strip(), codec.decode(second).strip()]


def _train_keys(codec, examples: list[list[int]], texts: list[tuple[str, ...]]) -> set[tuple[str, ...]]:
    """Normalised training texts, raw and after the codec's round trip (what samples decode like)."""
    keys = {tuple(_normalise(t) for t in pair) for pair in texts}
    for ids in examples:
        parts = _split(codec, ids[:-1])
        if parts is not None:
            keys.add(tuple(_normalise(t) for t in parts))
    return keys


# --- model and training ----------------------------------------------------------------------------


@contextlib.contextmanager
def _seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch's global RNGs for the block, restoring the caller's CPU (and this CUDA device's) state."""
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _scratch_model(settings: GeneratorSettings, vocab_size: int):
    """A randomly initialised GPT-2-shaped causal LM over ``vocab_size`` compact ids."""
    from transformers import AutoModelForCausalLM, GPT2Config

    config = GPT2Config(vocab_size=vocab_size, n_positions=settings.max_tokens, n_embd=settings.dim,
                        n_layer=settings.layers, n_head=settings.heads, bos_token_id=0, eos_token_id=0)
    return AutoModelForCausalLM.from_config(config)


def _pretrained_model(path: str, codec: _TokenizerCodec, max_tokens: int):
    """The causal LM at ``path``, its embeddings grown to the tokenizer when a token was added."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    if codec.size > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(codec.size)
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    _require(limit is None or max_tokens <= limit,
             f"generator max_tokens ({max_tokens}) exceeds the model's {limit} positions at {path}")
    return model


def _param_groups(model, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices, none on biases and LayerNorm gains (1-D parameters)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _optimiser(model, settings: GeneratorSettings, steps: int):
    """AdamW with linear warm-up over the first 10% of ``steps``, then linear decay to 0."""
    optimiser = torch.optim.AdamW(_param_groups(model, settings.weight_decay), lr=settings.lr)
    warmup = max(1, int(_WARMUP * steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (steps - step) / max(1, steps - warmup))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def _batches(examples: list[list[int]], batch_size: int, pad: int,
             rng: torch.Generator) -> Iterator[tuple[Tensor, ...]]:
    """Shuffled batches ``(input_ids, attention_mask, labels)``, each ``[B, T_batch_max]``; labels -100 on padding."""
    order = torch.randperm(len(examples), generator=rng).tolist()
    for start in range(0, len(order), batch_size):
        rows = [examples[i] for i in order[start:start + batch_size]]
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            ids[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        yield ids, mask, ids.masked_fill(mask == 0, -100)


def _step(model, optimiser, schedule, batch: tuple[Tensor, ...], device: str) -> tuple[float, int]:
    """One optimiser step; returns (mean token loss, predicted tokens)."""
    ids, mask, labels = (t.to(device) for t in batch)
    loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), _CLIP_NORM)
    optimiser.step()
    schedule.step()
    return loss.item(), int(mask[:, 1:].sum())


def _train_phase(model, examples: list[list[int]], settings: GeneratorSettings, *, pad: int, rng: torch.Generator,
                 device: str, progress: bool, desc: str) -> list[float]:
    """``settings.epochs`` epochs on ``examples`` with a fresh optimiser; per-epoch mean token loss (nats)."""
    from tqdm.auto import tqdm

    per_epoch = -(-len(examples) // settings.batch_size)
    optimiser, schedule = _optimiser(model, settings, settings.epochs * per_epoch)
    losses = []
    model.train()
    with tqdm(total=settings.epochs * per_epoch, desc=desc, mininterval=_PROGRESS_SECONDS,
              disable=not progress, leave=False) as bar:
        for _ in range(settings.epochs):
            total = count = 0
            for batch in _batches(examples, settings.batch_size, pad, rng):
                loss, tokens = _step(model, optimiser, schedule, batch, device)
                total, count = total + loss * tokens, count + tokens
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            losses.append(total / max(count, 1))
    return losses


# --- the generator -------------------------------------------------------------------------------


class Generator:
    """A trained causal LM, its codec and the training examples its prompts come from.

    Build with :meth:`train`; draw with :meth:`sample`.

    Attributes:
        model: the causal LM (``transformers`` ``PreTrainedModel``), in eval mode.
        codec: text <-> model ids (``eos``, ``sep``, ``pad``, ``size``, ``to_model``, ``decode``).
        examples: the task examples as model ids, each ending with end-of-text.
        losses: per-epoch mean token loss, pre-training epochs first.
        train_stats: ``generator_params``, ``vocab_size``, losses and ``train_seconds``.
    """

    STATE_FILE = "generator.json"
    """The file :meth:`save` writes last: a folder holding it holds a whole generator."""

    def __init__(self, model, codec, settings: GeneratorSettings, examples: list[list[int]],
                 train_keys: set[tuple[str, ...]], losses: list[float], train_stats: dict[str, float], device: str):
        self.model, self.codec, self.settings = model, codec, settings
        self.examples, self.train_keys = examples, train_keys
        self.losses, self.train_stats, self.device = losses, train_stats, device

    @property
    def pairs(self) -> bool:
        """True when samples are sentence pairs."""
        return self.codec.sep is not None

    @classmethod
    def train(cls, texts_a: list[str], texts_b: list[str] | None, settings: GeneratorSettings, *, tokenizer,
              seed: int, device: str = "cpu", pretrain_texts: list[str] | None = None,
              progress: bool = True) -> Generator:
        """Build the generator (scratch or ``settings.path``) and train it on the texts.

        Args:
            texts_a: first (or only) texts of the training examples.
            texts_b: second texts for a pair task, same length as ``texts_a``; None otherwise.
            settings: generator size and training.
            tokenizer: the teacher's tokenizer, used for the scratch vocabulary (ignored for a
                pretrained path, which loads its own).
            seed: seeds the weights, dropout and batch order.
            device: torch device of the model.
            pretrain_texts: unlabelled sentences to train on first (``epochs`` epochs); None = none.
            progress: show a tqdm bar per training phase.

        Raises:
            RaykdInputError (a ValueError): no usable text, mismatched pair lengths, an empty
                ``pretrain_texts``, a scratch generator without a tokenizer.
        """
        started = time.perf_counter()
        _check_corpus(texts_a, texts_b, pretrain_texts)
        with _seeded(seed, device):
            codec, model, task, pre = _build(texts_a, texts_b, settings, tokenizer, pretrain_texts)
            model.to(device)
            rng = torch.Generator().manual_seed(seed)
            kwargs = {"pad": codec.pad, "rng": rng, "device": device, "progress": progress}
            pre_losses = _train_phase(model, pre, settings, desc="generator pre-training", **kwargs) if pre else []
            losses = _train_phase(model, task, settings, desc="generator training", **kwargs)
        model.eval()
        texts = list(zip(texts_a, texts_b)) if texts_b is not None else [(t,) for t in texts_a]
        stats = _train_stats(model, codec, pre_losses, losses, time.perf_counter() - started)
        return cls(model, codec, settings, task, _train_keys(codec, task, texts), pre_losses + losses, stats, device)

    def save(self, folder: Path) -> None:
        """Write the generator to ``folder`` for :meth:`load`, :attr:`STATE_FILE` last.

        The folder gets ``model/`` (weights, config), ``tokenizer/`` (a pretrained path's tokenizer,
        ``[TAB]`` included) and :attr:`STATE_FILE` (settings, codec, examples, training keys, losses
        and statistics).
        """
        folder = Path(folder)
        self.model.save_pretrained(folder / "model")
        if isinstance(self.codec, _TokenizerCodec):
            self.codec.tokenizer.save_pretrained(folder / "tokenizer")
        state = {"settings": asdict(self.settings), "codec": self.codec.state(), "examples": self.examples,
                 "train_keys": sorted(self.train_keys), "losses": self.losses, "train_stats": self.train_stats}
        (folder / self.STATE_FILE).write_text(json.dumps(state))

    @classmethod
    def load(cls, folder: Path, *, tokenizer, device: str = "cpu") -> Generator:
        """A generator :meth:`save` wrote, in eval mode on ``device``.

        Args:
            folder: the saved generator.
            tokenizer: the teacher's tokenizer for a scratch generator (ignored for a pretrained path,
                whose tokenizer was saved with it).
            device: torch device of the model.
        """
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(folder)
        state = json.loads((folder / cls.STATE_FILE).read_text())
        if state["codec"]["kind"] == "tokenizer":
            tokenizer = AutoTokenizer.from_pretrained(folder / "tokenizer")
        codec = _codec_from_state(state["codec"], tokenizer)
        with torch.random.fork_rng(devices=[]):  # weight init before loading must not move the caller's RNG
            model = AutoModelForCausalLM.from_pretrained(folder / "model")
        model = model.to(device).eval()
        return cls(model, codec, GeneratorSettings(**state["settings"]), state["examples"],
                   {tuple(key) for key in state["train_keys"]}, state["losses"], state["train_stats"], device)

    def sample(self, n: int, sampling: SamplingSettings, *, seed: int) -> GeneratedSet:
        """Draw until ``n`` samples survive the filters or ``4 n`` samples were examined.

        Args:
            n: kept samples wanted.
            sampling: decoding, prompt and filter settings.
            seed: seeds the prompts (numpy) and the token draws (torch).

        Returns:
            The kept samples (at most ``n``) and the counts (see :class:`GeneratedSet`).
        """
        import pandas as pd

        _require(n >= 0, f"the number of samples must be >= 0, got {n}")
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        counts: Counter = Counter()
        kept: list[tuple[str, ...]] = []
        seen = set(self.train_keys) if sampling.dedup else None
        with _seeded(seed, self.device), torch.no_grad():
            while len(kept) < n and counts["drawn"] < _DRAWS_PER_SAMPLE * n:
                size = min(sampling.batch_size, _DRAWS_PER_SAMPLE * n - counts["drawn"])
                self._filter(self._draw(size, sampling, rng), n, kept, seen, counts)
        columns = ["text_a", "text_b"] if self.pairs else ["text_a"]
        stats = {key: float(counts[key]) for key in ("drawn", "duplicates", "no_separator", "empty", "truncated")}
        stats.update(requested=float(n), kept=float(len(kept)), sample_seconds=time.perf_counter() - started,
                     **self.train_stats)
        return GeneratedSet(pd.DataFrame(kept, columns=columns), stats)

    def _prompts(self, size: int, sampling: SamplingSettings, rng: np.random.Generator) -> Tensor:
        """``[size, P]`` prompt ids: P = 1 (``first_token``) or ``prefix_tokens`` (``prefix``)."""
        if sampling.prompt == "first_token":
            first = Counter(ex[0] for ex in self.examples)
            ids, weights = np.array(sorted(first)), np.array([first[i] for i in sorted(first)], dtype=float)
            return torch.as_tensor(rng.choice(ids, size=size, p=weights / weights.sum()))[:, None]
        k = sampling.prefix_tokens
        eligible = [ex[:k] for ex in self.examples if len(ex) - 1 > k]
        _require(bool(eligible), f"prefix prompts need training examples longer than prefix_tokens={k} tokens")
        return torch.as_tensor(np.array(eligible)[rng.integers(len(eligible), size=size)])

    def _draw(self, size: int, sampling: SamplingSettings, rng: np.random.Generator) -> list[list[int] | None]:
        """``size`` samples as model ids before end-of-text (prompt included); None when none came."""
        prompts = self._prompts(size, sampling, rng).to(self.device)
        out = self.model.generate(prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                                  top_k=sampling.top_k, top_p=sampling.top_p, temperature=sampling.temperature,
                                  max_new_tokens=self.settings.max_tokens - prompts.shape[1],
                                  eos_token_id=self.codec.eos, pad_token_id=self.codec.pad)
        rows = out.cpu().tolist()
        return [row[:row.index(self.codec.eos)] if self.codec.eos in row else None for row in rows]

    def _filter(self, rows: list[list[int] | None], n: int, kept: list[tuple[str, ...]],
                seen: set[tuple[str, ...]] | None, counts: Counter) -> None:
        """Decode and filter ``rows`` into ``kept`` (stops at ``n``), counting each outcome."""
        for row in rows:
            if len(kept) >= n:
                return
            counts["drawn"] += 1
            parts = None if row is None else _split(self.codec, row)
            if row is None or parts is None:
                counts["truncated" if row is None else "no_separator"] += 1
            elif not all(parts):
                counts["empty"] += 1
            elif seen is not None and tuple(map(_normalise, parts)) in seen:
                counts["duplicates"] += 1
            else:
                kept.append(tuple(parts))
                if seen is not None:
                    seen.add(tuple(map(_normalise, parts)))


def _check_corpus(texts_a: Sequence[str], texts_b: Sequence[str] | None, pretrain: Sequence[str] | None) -> None:
    """Raise on an empty corpus or mismatched pair columns."""
    _require(len(texts_a) > 0, "the generator needs at least one training text (got an empty corpus)")
    _require(texts_b is None or len(texts_b) == len(texts_a),
             f"texts_a and texts_b differ in length ({len(texts_a)} vs {len(texts_b or [])})")
    _require(pretrain is None or len(pretrain) > 0, "pretrain_texts is empty (pass None for no pre-training)")


def _build(texts_a, texts_b, settings: GeneratorSettings, tokenizer, pretrain_texts):
    """Codec, model, task examples and pre-training examples (model ids, end-of-text appended)."""
    scratch = settings.path == SCRATCH
    _require(not scratch or tokenizer is not None, "a scratch generator needs the teacher's tokenizer")
    if not scratch:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(settings.path)
    a_ids, b_ids, pre_ids = (None if texts is None else _tokenize(tokenizer, [str(t) for t in texts],
                                                                  settings.max_tokens)
                             for texts in (texts_a, texts_b, pretrain_texts))
    if scratch:
        codec = _CompactCodec.of_corpus(tokenizer, a_ids + (b_ids or []) + (pre_ids or []), pairs=texts_b is not None)
        model = _scratch_model(settings, codec.size)
    else:
        codec = _TokenizerCodec(tokenizer, pairs=texts_b is not None)
        model = _pretrained_model(settings.path, codec, settings.max_tokens)
    task = _examples(codec, a_ids, b_ids, settings.max_tokens)
    pre = _examples(codec, pre_ids, None, settings.max_tokens) if pre_ids is not None else []
    _require(bool(task), "the generator's training texts are all empty after tokenisation")
    _require(pre_ids is None or bool(pre), "pretrain_texts are all empty after tokenisation")
    return codec, model, task, pre


def _train_stats(model, codec, pre_losses: list[float], losses: list[float], seconds: float) -> dict[str, float]:
    """The training figures reported with every sample set."""
    stats = {"generator_params": float(sum(p.numel() for p in model.parameters())), "vocab_size": float(codec.size),
             "first_epoch_loss": losses[0], "final_train_loss": losses[-1], "train_seconds": seconds}
    if pre_losses:
        stats["pretrain_loss"] = pre_losses[-1]
    return stats


def generate_transfer_set(frame: pd.DataFrame, settings: GeneratorSettings, sampling: SamplingSettings, n: int, *,
                          tokenizer, seed: int, device: str = "cpu", pretrain_texts: list[str] | None = None,
                          progress: bool = True) -> GeneratedSet:
    """Train a generator on the (low-data) training text, sample ``n`` texts and filter them.

    Args:
        frame: ``text_a`` (and ``text_b`` for pairs) of the training set; other columns ignored.
        settings: generator source, size and training.
        sampling: decoding, prompt and filters.
        n: kept samples wanted (the caller's multiple of the training set size).
        tokenizer: the teacher's tokenizer (scratch vocabulary).
        seed: seeds training and sampling.
        device: torch device.
        pretrain_texts: optional unlabelled corpus trained on first.
        progress: show training progress bars.

    Returns:
        The kept samples and the counts of :class:`GeneratedSet`.
    """
    _require("text_a" in frame.columns, f"the generator needs a text_a column, got {list(frame.columns)}")
    _require(n >= 0, f"the number of samples must be >= 0, got {n}")
    texts_a = text_column(frame, "text_a")
    texts_b = text_column(frame, "text_b") if "text_b" in frame.columns else None
    generator = Generator.train(texts_a, texts_b, settings, tokenizer=tokenizer, seed=seed, device=device,
                                pretrain_texts=pretrain_texts, progress=progress)
    return generator.sample(n, sampling, seed=seed)


def text_column(frame: pd.DataFrame, name: str) -> list[str]:
    """A text column as strings; empty cells (NaN in TSV files) become empty texts."""
    return ["" if not isinstance(value, str) else value for value in frame[name].tolist()]
