"""Transfer sets as a cached stage: built once per (settings, data, teacher, seed), shared by trials and sweeps.

An augmented or generated transfer set costs far more than a student epoch (a generator to train,
thousands of samples to draw, the teacher to run over all of them), and every trial that asks for
the same settings would build the same set. :func:`ensure_transfer_set` builds it once under
``<cache>/transfer_sets/<key>/`` where the key is a SHA-256 over the builder's kind and settings,
the training data's content, the teacher's weights, ``max_length`` and the seed. Builders run under
a file lock, so concurrent trials wait for one build and then read it; later sweeps with the same
key read it too. Each build appends one line to ``<cache>/transfer_sets/builds.log`` (what the
shared-set test counts).

A folder holds ``split.npz`` (an :class:`~raykd.data.encoding.EncodedSplit` with the teacher's
logits and no gold labels: -1, or NaN for regression), ``texts.jsonl`` (the examples as text),
``meta.json`` (settings, counts, build seconds, the builder's statistics) and ``examples.txt`` (a
few examples with the teacher's label, for people and MLflow).
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
from typing import TYPE_CHECKING, Callable

import numpy as np

from raykd.data.encoding import EncodedSplit

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TransferSource", "TransferSet", "ensure_transfer_set", "transfer_key", "BUILDS_LOG"]

CACHE_VERSION = 1
BUILDS_LOG = "builds.log"
_EXAMPLES_SHOWN = 30

Builder = Callable[["pd.DataFrame"], "tuple[pd.DataFrame, dict]"]
"""``build(train_frame) -> (frame of text_a [, text_b], statistics)``."""


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
        """The training split as a DataFrame."""
        import pandas as pd

        return pd.read_json(self.train_text, lines=True)


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

    def load(self) -> EncodedSplit:
        """The encoded examples with the teacher's logits."""
        return EncodedSplit.load(self.folder / "split.npz")

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
                        device: str = "cpu", batch_size: int = 128) -> TransferSet:
    """Return the transfer set for ``(kind, settings)``, building and teacher-labelling it only if missing.

    Args:
        kind: the builder's name (``tang``, ``generation``); part of the key.
        settings: the builder's settings, JSON-serialisable; part of the key.
        source: the training data, teacher and cache it is built from.
        build: makes the unlabelled examples from the training frame, returning them and statistics.
        device: where the teacher runs.
        batch_size: examples per teacher forward pass.

    Raises:
        RuntimeError: the builder produced no examples.
    """
    from filelock import FileLock

    key = transfer_key(kind, settings, source)
    root = Path(source.cache_dir) / "transfer_sets"
    folder = root / key
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f"{key}.lock")):  # concurrent trials wait for one build, then read it
        if (folder / "meta.json").is_file():
            return TransferSet(folder, key, False, json.loads((folder / "meta.json").read_text()))
        start = time.perf_counter()
        frame, stats = build(source.read_train())
        if not len(frame):
            raise RuntimeError(f"the {kind} transfer set came out empty ({stats}); change its settings")
        split = _label(frame, source, device, batch_size)
        meta = {"kind": kind, "settings": settings, "rows": len(split), "seed": source.seed,
                "data_fingerprint": source.data_fingerprint, "teacher": source.teacher_path,
                "max_length": source.max_length, "build_seconds": round(time.perf_counter() - start, 2),
                "stats": stats}
        _write(folder, split, frame, meta)
        with open(root / BUILDS_LOG, "a") as log:
            log.write(f"{key} {kind} pid={os.getpid()} rows={len(split)} seconds={meta['build_seconds']}\n")
    return TransferSet(folder, key, True, meta)


def _label(frame: "pd.DataFrame", source: TransferSource, device: str, batch_size: int) -> EncodedSplit:
    """Tokenise the examples with the teacher's tokenizer and add the teacher's logits; no gold labels."""
    from raykd.data.encoding import encode_frame
    from raykd.teachers.cache import teacher_logits
    from raykd.teachers.load import load_teacher, load_tokenizer

    frame = frame.copy()
    frame["label"] = np.nan if source.num_labels == 1 else -1
    tokenizer, teacher = load_tokenizer(source.teacher_path), load_teacher(source.teacher_path, device)
    split = encode_frame(tokenizer, frame, source.max_length)
    split.teacher_logits = teacher_logits(teacher, split, tokenizer.pad_token_id, batch_size, device)
    return split


def _write(folder: Path, split: EncodedSplit, frame: "pd.DataFrame", meta: dict) -> None:
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        split.save(tmp / "split.npz")
        frame.to_json(tmp / "texts.jsonl", orient="records", lines=True)
        (tmp / "examples.txt").write_text(_examples(frame, split.teacher_logits, meta))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _examples(frame: "pd.DataFrame", logits: np.ndarray, meta: dict) -> str:
    """A seeded handful of examples with the teacher's prediction (class and probability, or score)."""
    rng = np.random.default_rng(meta["seed"])
    rows = np.sort(rng.choice(len(frame), size=min(_EXAMPLES_SHOWN, len(frame)), replace=False))
    lines = [f"# {meta['kind']} transfer set: {meta['rows']} examples; settings {json.dumps(meta['settings'])}"]
    for i in rows:
        text = " ||| ".join(str(frame.iloc[i][c]) for c in ("text_a", "text_b") if c in frame)
        if logits.shape[1] == 1:
            lines.append(f"[{logits[i, 0]:.2f}] {text}")
        else:
            probs = np.exp(logits[i] - logits[i].max())
            probs /= probs.sum()
            lines.append(f"[{int(probs.argmax())} {probs.max():.2f}] {text}")
    return "\n".join(lines) + "\n"
