"""Transfer sets as a cached stage: built once per (settings, data, teacher, seed), shared by trials and sweeps.

An augmented or generated transfer set costs far more than a student epoch (a generator to train,
thousands of samples to draw, the teacher to run over all of them), and every trial that asks for
the same settings would build the same set. :func:`ensure_transfer_set` builds it once under
``<cache>/transfer_sets/<key>/`` where the key is a SHA-256 over the builder's kind and settings,
the training data's content, the teacher's weights, ``max_length`` and the seed. Builders run under
a file lock, so concurrent trials wait for one build and then read it; later sweeps with the same
key read it too. Each build appends one line to ``<cache>/transfer_sets/builds.log`` (what the
shared-set test counts).

A folder holds:

- ``split/``: a shard folder (:mod:`raykd.data.shards`: ``shard-00000.npz``, ... and ``index.json``)
  of the :class:`~raykd.data.encoding.EncodedSplit` with the teacher's logits and no gold labels
  (-1, or NaN for regression). Sets cached before sets were sharded hold one ``split.npz``
  instead; :class:`TransferSet` reads either.
- ``texts.jsonl``: the examples as text, one line per row of the split, in the same order.
- ``meta.json``: settings, ``rows``, ``shards``, ``shard_rows``, build seconds, the builder's statistics.
- ``examples.txt``: 30 examples with the teacher's label, for people and MLflow: a seeded uniform
  sample by reservoir sampling over the rows as they stream past (one draw per row, so the sample
  is the same for every shard size).

Memory. The builder may return its examples as one frame or as an iterable of frames (a chunked
builder such as :func:`raykd.transfer.augment.tang_chunks`). Either way they are tokenised,
teacher-labelled and written ``shard_rows`` examples at a time, and ``texts.jsonl`` is appended a
shard at a time, so beyond what the builder itself holds (the training frame; one chunk for a
chunked builder, the whole set for a one-frame builder) the build holds one shard: its text, its
tokens and logits (numpy, about 0.5 KB per 80-token pair), and the tokenizer's output for
:data:`ENCODE_ROWS` examples at a time (Python lists, about 8 KB per such pair: tokenising a
50,000-row shard in one call would take 0.4 GB). ``benchmarks/transfer_memory.py`` measures it:
a Tang build peaks about 0.35-0.4 GB above reading its source with 10,000-row shards at 100,000 and
400,000 source pairs alike, 0.6 GB with 50,000-row shards (glibc's fragmented heap included).
``shard_rows`` is not part of the key: a set is read back whatever shard size built it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Union

import numpy as np

from raykd.data.encoding import EncodedSplit
from raykd.data.shards import SHARD_ROWS, ShardWriter, iter_shards, load_split

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TransferSource", "TransferSet", "Builder", "ensure_transfer_set", "transfer_key", "BUILDS_LOG",
           "ENCODE_ROWS"]

CACHE_VERSION = 1
BUILDS_LOG = "builds.log"
_EXAMPLES_SHOWN = 30

ENCODE_ROWS = 8192
"""Examples per tokenizer call when a shard is labelled (bounds the tokenizer's Python-list output)."""

Examples = Union["pd.DataFrame", Iterable["pd.DataFrame"]]
"""A builder's examples: one frame of ``text_a`` [, ``text_b``], or an iterable of such frames."""

Builder = Callable[["pd.DataFrame"], "tuple[Examples, dict]"]
"""``build(train_frame) -> (examples, statistics)``.

``examples`` is one frame of ``text_a`` [, ``text_b``] (the whole set) or an iterable of frames
(chunks, in order: e.g. a generator over :func:`raykd.transfer.augment.tang_chunks`). The store
reads ``statistics`` only after the last chunk, so a chunked builder may fill it in as it goes.
"""


@dataclass(frozen=True)
class TransferSource:
    """What a transfer set is built from (the same for every trial of a sweep).

    Attributes:
        train_text: file of the (low-data) training split as text (``text_a``, ``text_b``, ``label``), JSON lines.
        data_fingerprint: content hash of that split.
        teacher_path: teacher folder or hub id (labels the set; its tokenizer encodes it).
        teacher_fingerprint: hash of the teacher's weights.
        max_length: tokens per example.
        cache_dir: the shared cache root (``<storage>/cache``).
        seed: the sweep seed.
        num_labels: teacher outputs (1 for regression).
        ood_text: file of the out-of-domain corpus as text (a generator may pre-train on it), or None.
    """

    train_text: str
    data_fingerprint: str
    teacher_path: str
    teacher_fingerprint: str
    max_length: int
    cache_dir: str
    seed: int
    num_labels: int
    ood_text: str | None = None

    def read_train(self) -> "pd.DataFrame":
        """The training split as a DataFrame.

        Read :data:`~raykd.data.shards.SHARD_ROWS` lines at a time: parsing a whole JSON-lines file
        at once peaks at several times the frame it makes (880 MB for 400,000 GLUE pairs whose frame
        takes 220 MB; 280 MB read in parts).
        """
        import pandas as pd

        with pd.read_json(self.train_text, lines=True, chunksize=SHARD_ROWS) as reader:
            parts = list(reader)
        if not parts:  # an empty file: what reading it whole gives
            return pd.read_json(self.train_text, lines=True)
        return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)


@dataclass(frozen=True)
class TransferSet:
    """A transfer set in the cache.

    Attributes:
        folder: its cache folder.
        key: its content key.
        built: True if this call built it, False if it was read from the cache.
        meta: the contents of ``meta.json``.
    """

    folder: Path
    key: str
    built: bool
    meta: dict

    @property
    def split_path(self) -> Path:
        """The shard folder ``split/``, or the ``split.npz`` of a set cached before sets were sharded."""
        single = self.folder / "split.npz"
        return single if single.is_file() else self.folder / "split"

    def load(self) -> EncodedSplit:
        """The encoded examples with the teacher's logits, all shards joined (what a trial trains on)."""
        return load_split(self.split_path)

    def shards(self) -> Iterator[EncodedSplit]:
        """The encoded examples a shard at a time, in order (one shard in memory; ``split.npz``: itself)."""
        return iter_shards(self.split_path)

    @property
    def examples(self) -> str:
        """A few examples as text, with the teacher's label."""
        return (self.folder / "examples.txt").read_text()


def transfer_key(kind: str, settings: dict, source: TransferSource) -> str:
    """The cache key of a set: SHA-256 over kind, settings, data, teacher, max_length and seed (24 hex digits)."""
    payload = {"v": CACHE_VERSION, "kind": kind, "settings": settings, "data": source.data_fingerprint,
               "teacher": source.teacher_fingerprint, "max_length": source.max_length, "seed": source.seed}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def ensure_transfer_set(kind: str, settings: dict, source: TransferSource, build: Builder, *,
                        device: str = "cpu", batch_size: int = 128, shard_rows: int = SHARD_ROWS) -> TransferSet:
    """Return the transfer set for ``(kind, settings)``, building and teacher-labelling it only if missing.

    Args:
        kind: the builder's name (``tang``, ``generation``); part of the key.
        settings: the builder's settings, JSON-serialisable; part of the key.
        source: the training data, teacher and cache it is built from.
        build: makes the unlabelled examples from the training frame, returning them (one frame or
            an iterable of frames) and statistics; see :data:`Builder`.
        device: where the teacher runs.
        batch_size: examples per teacher forward pass.
        shard_rows: examples tokenised, labelled and written at a time (one shard each); bounds
            the build's memory. Not part of the key.

    Raises:
        RuntimeError: the builder produced no examples (nothing is cached).
        ValueError: ``shard_rows`` < 1.
    """
    from filelock import FileLock

    if shard_rows < 1:
        raise ValueError(f"shard_rows must be at least 1, got {shard_rows}")
    key = transfer_key(kind, settings, source)
    root = Path(source.cache_dir) / "transfer_sets"
    folder = root / key
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):  # concurrent trials wait for one build, then read it
        if (folder / "meta.json").is_file():
            return TransferSet(folder, key, False, json.loads((folder / "meta.json").read_text()))
        start = time.perf_counter()
        examples, stats = build(source.read_train())
        meta = {"kind": kind, "settings": settings, "seed": source.seed, "data_fingerprint": source.data_fingerprint,
                "teacher": source.teacher_path, "max_length": source.max_length, "shard_rows": shard_rows}
        meta = _publish(folder, examples, stats, meta, _Labeller(source, device, batch_size), start)
        with open(root / BUILDS_LOG, "a") as log:
            log.write(f"{key} {kind} pid={os.getpid()} rows={meta['rows']} shards={meta['shards']} "
                      f"seconds={meta['build_seconds']}\n")
    return TransferSet(folder, key, True, meta)


def _publish(folder: Path, examples: Examples, stats: dict, meta: dict, label: "_Labeller", start: float) -> dict:
    """Label and write the examples into a temporary folder a shard at a time, then rename it to ``folder``.

    Returns:
        ``meta`` with ``rows``, ``shards``, ``build_seconds`` and ``stats`` (as written to ``meta.json``).
    """
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        sample = _Sample(meta["seed"])
        with open(tmp / "texts.jsonl", "w") as texts:
            writer = ShardWriter(tmp / "split", meta["shard_rows"])
            for chunk in _rechunk(examples, meta["shard_rows"]):
                split = label(chunk)
                writer.add(split)
                texts.write(_json_lines(chunk))
                sample.add(chunk, split.teacher_logits)
            index = writer.close()
        if not index["rows"]:
            raise RuntimeError(f"the {meta['kind']} transfer set came out empty ({stats}); change its settings")
        meta = {**meta, "rows": index["rows"], "shards": len(index["shards"]),
                "build_seconds": round(time.perf_counter() - start, 2), "stats": stats}
        (tmp / "examples.txt").write_text(sample.text(meta))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _rechunk(examples: Examples, rows: int) -> Iterator["pd.DataFrame"]:
    """The builder's examples again as frames of ``rows`` examples (the last may be smaller), indexed from 0."""
    import pandas as pd

    pending: list[pd.DataFrame] = []
    count = 0
    for frame in [examples] if isinstance(examples, pd.DataFrame) else examples:
        while len(frame):
            part, frame = frame.iloc[:rows - count], frame.iloc[rows - count:]
            pending.append(part)
            count += len(part)
            if count == rows:
                yield pd.concat(pending, ignore_index=True)
                pending, count = [], 0
    if pending:
        yield pd.concat(pending, ignore_index=True)


def _json_lines(frame: "pd.DataFrame") -> str:
    text = frame.to_json(orient="records", lines=True)
    return text if text.endswith("\n") else text + "\n"  # pandas before 1.5 leaves the last newline off


class _Labeller:
    """Tokenises a chunk with the teacher's tokenizer and adds the teacher's logits; no gold labels.

    The tokenizer and teacher load on the first chunk (an empty build never loads them).
    """

    def __init__(self, source: TransferSource, device: str, batch_size: int):
        self.source, self.device, self.batch_size = source, device, batch_size
        self._models = None

    def __call__(self, chunk: "pd.DataFrame") -> EncodedSplit:
        from raykd.data.encoding import encode_frame
        from raykd.teachers.cache import teacher_logits

        if self._models is None:
            from raykd.teachers.load import load_teacher, load_tokenizer

            self._models = load_tokenizer(self.source.teacher_path), load_teacher(self.source.teacher_path, self.device)
        tokenizer, teacher = self._models
        chunk = chunk.assign(label=np.nan if self.source.num_labels == 1 else -1)
        parts = [encode_frame(tokenizer, chunk.iloc[i:i + ENCODE_ROWS], self.source.max_length)
                 for i in range(0, len(chunk), ENCODE_ROWS)]
        split = parts[0] if len(parts) == 1 else EncodedSplit.concat(parts)
        split.teacher_logits = teacher_logits(teacher, split, tokenizer.pad_token_id, self.batch_size, self.device)
        return split


class _Sample:
    """A seeded uniform sample of a stream of examples with their logits (reservoir sampling, Algorithm R).

    Row ``i`` (0-based, over the whole stream) takes one float draw ``u``; the first ``size`` rows
    fill the slots, later ones replace slot ``floor(u * (i + 1))`` when that is below ``size``. One
    draw per row in stream order makes the sample independent of how the stream is chunked.
    """

    def __init__(self, seed: int, size: int = _EXAMPLES_SHOWN):
        self._rng = np.random.default_rng(seed)
        self._size = size
        self._seen = 0
        self._slots: dict[int, tuple[int, str, np.ndarray]] = {}

    def add(self, chunk: "pd.DataFrame", logits: np.ndarray) -> None:
        """Offer the rows of ``chunk`` (logits ``[len(chunk), C]``) to the sample."""
        rows = self._seen + np.arange(len(chunk))
        slots = np.where(rows < self._size, rows, (self._rng.random(len(chunk)) * (rows + 1)).astype(np.int64))
        columns = [c for c in ("text_a", "text_b") if c in chunk]
        for i in np.nonzero(slots < self._size)[0]:
            text = " ||| ".join(str(chunk[c].iat[i]) for c in columns)
            self._slots[int(slots[i])] = (int(rows[i]), text, logits[i].copy())
        self._seen += len(chunk)

    def text(self, meta: dict) -> str:
        """The sample in stream order with the teacher's prediction (class and probability, or score)."""
        lines = [f"# {meta['kind']} transfer set: {meta['rows']} examples; settings {json.dumps(meta['settings'])}"]
        for _, text, logits in sorted(self._slots.values(), key=lambda slot: slot[0]):
            if len(logits) == 1:
                lines.append(f"[{logits[0]:.2f}] {text}")
            else:
                probs = np.exp(logits - logits.max())
                probs /= probs.sum()
                lines.append(f"[{int(probs.argmax())} {probs.max():.2f}] {text}")
        return "\n".join(lines) + "\n"
