"""The teacher-output cache: soft targets computed once, shared by every trial and every sweep.

A sweep's trials all distil from the same frozen teacher on the same transfer set, so the teacher
runs once per (teacher weights, data, tokenisation): :func:`cached_teacher_outputs` tokenises each
split, runs the teacher over it in length-sorted batches and stores an
:class:`~raykd.data.encoding.EncodedSplit` under ``<cache_dir>/teacher_outputs/<key>/``, where the
key is a SHA-256 over the teacher's config and weight files, the split's rows, the tokenizer files
and ``max_length``. Trials only read the file; a later sweep with the same inputs reuses it.
Files are written to a temporary folder and renamed, so concurrent builders never see half a file.

A sweep does not run the teacher in its own process: it passes ``compute``
(:func:`raykd.teachers.batch_inference.ray_soft_targets`), and the split is labelled by teacher
replicas on the cluster and stored as a shard folder ``split/`` (:mod:`raykd.data.shards`); the
in-process path (``raykd teacher``'s commands, benchmarks, tests) stores one ``split.npz``. Both
load the same way (:meth:`CachedSplit.load`). Each computed split adds a line to
``teacher_outputs/soft_targets.log``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from raykd.data.encoding import EncodedSplit, encode_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CachedSplit", "cached_teacher_outputs", "teacher_logits", "teacher_fingerprint", "frame_fingerprint",
           "cached_split_path", "stored_split", "teacher_was_checked", "CHECKED_KEY"]

CACHE_VERSION = 1
SOFT_TARGETS_LOG = "soft_targets.log"
"""``<cache>/teacher_outputs/soft_targets.log``: one JSON line per split computed by a ``compute`` hook."""
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


@dataclass(frozen=True)
class CachedSplit:
    """A split in the cache.

    Attributes:
        path: the ``split.npz`` file or ``split/`` shard folder holding the :class:`EncodedSplit` with teacher logits.
        key: its content key.
        built: True if this call computed it, False if it was already cached.
    """

    path: Path
    key: str
    built: bool

    def load(self) -> EncodedSplit:
        """Read the split."""
        return EncodedSplit.load(self.path)


@functools.lru_cache(maxsize=16)
def _hash_folder(folder: str, stamp: tuple) -> str:
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(name.encode())
        with open(Path(folder) / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def teacher_fingerprint(path: str) -> str:
    """SHA-256 over a model folder's weight, config and tokenizer files (hub ids: their snapshot)."""
    folder = Path(path)
    if not folder.is_dir():
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(path))
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_folder(str(folder), stamp)


def frame_fingerprint(frame: "pd.DataFrame") -> str:
    """SHA-256 over a DataFrame's rows and column names."""
    import pandas as pd

    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes() + ",".join(frame.columns).encode()).hexdigest()


def _split_key(teacher_fp: str, frame: "pd.DataFrame", max_length: int) -> str:
    payload = {"v": CACHE_VERSION, "teacher": teacher_fp, "data": frame_fingerprint(frame), "max_length": max_length}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


CHECKED_KEY = "teacher_checked"
"""``meta.json`` flag of a split stored from the pre-sweep teacher check: the teacher with these exact
files (the key covers them) loaded with its head and tokenizer, so a later check need not load it again."""


def teacher_was_checked(split_path: Path) -> bool:
    """Whether a cached split was stored from a teacher check (:data:`CHECKED_KEY` in its ``meta.json``)."""
    try:
        return bool(json.loads((split_path.parent / "meta.json").read_text()).get(CHECKED_KEY))
    except (OSError, ValueError, AttributeError):
        return False


def stored_split(folder: Path) -> Path | None:
    """The split in a cache key folder: ``split/`` (a shard folder, as batch inference writes it) or
    ``split.npz`` (one file, as the in-process path and older caches write it); None if neither is finished."""
    from raykd.data.shards import is_sharded

    if (folder / "split.npz").is_file():
        return folder / "split.npz"
    return folder / "split" if is_sharded(folder / "split") else None


def cached_split_path(cache_dir: str | Path, teacher_path: str, frame: "pd.DataFrame", max_length: int) -> Path | None:
    """The cached split of ``frame`` labelled by this teacher, if a sweep already computed it (reads only)."""
    return stored_split(Path(cache_dir) / "teacher_outputs" / _split_key(teacher_fingerprint(teacher_path), frame, max_length))


def cached_teacher_outputs(
    teacher_path: str,
    frames: dict[str, "pd.DataFrame"],
    *,
    max_length: int,
    cache_dir: str | Path,
    batch_size: int = 128,
    device: str = "cpu",
    progress: Callable[[str, int], Callable[[int], None]] | None = None,
    computed: dict[str, EncodedSplit] | None = None,
    compute: Callable[..., dict] | None = None,
) -> dict[str, CachedSplit]:
    """Return every split of ``frames`` tokenised and labelled by the teacher, computing only what is missing.

    Args:
        teacher_path: teacher folder or hub id (the tokenizer is the teacher's).
        frames: split name -> DataFrame (``text_a``, optional ``text_b``, ``label``).
        max_length: truncation length in tokens.
        cache_dir: root of the cache (``<storage>/cache``).
        batch_size: examples per teacher forward pass.
        device: ``cpu`` or ``cuda``.
        progress: optional ``progress(description, total)`` returning an ``advance(n)`` callable.
        computed: splits whose teacher logits were already computed with this teacher, tokenizer
            and ``max_length`` (the pre-sweep teacher check's dev outputs): stored, not recomputed.
        compute: how a missing split is labelled elsewhere: ``compute(name, frame, teacher_path,
            max_length, folder) -> stats`` writes a shard folder (:mod:`raykd.data.shards`) at
            ``folder`` (a sweep passes :func:`raykd.teachers.batch_inference.ray_soft_targets`:
            teacher replicas on the cluster). None: tokenise and run the teacher in this process.

    Returns:
        split name -> :class:`CachedSplit`.
    """
    fingerprint = teacher_fingerprint(teacher_path)
    root = Path(cache_dir) / "teacher_outputs"
    keys = {name: _split_key(fingerprint, frame, max_length) for name, frame in frames.items()}
    built = [name for name, key in keys.items() if stored_split(root / key) is None]
    for name in [n for n in built if n in (computed or {})]:
        _write(root / keys[name], computed[name], {"split": name, "rows": len(computed[name]), "teacher": teacher_path,
                                                   "teacher_fingerprint": fingerprint, "max_length": max_length,
                                                   CHECKED_KEY: True})
    missing = [name for name in built if name not in (computed or {})]
    if missing and compute is not None:
        for name in missing:
            _compute_into(root / keys[name], name, frames[name], compute, teacher_path, max_length,
                          {"split": name, "rows": len(frames[name]), "teacher": teacher_path,
                           "teacher_fingerprint": fingerprint, "max_length": max_length})
    elif missing:
        from raykd.teachers.load import load_teacher, load_tokenizer

        tokenizer, model = load_tokenizer(teacher_path), load_teacher(teacher_path, device)
        for name in missing:
            split = encode_frame(tokenizer, frames[name], max_length)
            advance = progress(f"teacher soft targets: {name}", len(split)) if progress else None
            split.teacher_logits = teacher_logits(model, split, tokenizer.pad_token_id, batch_size, device, advance)
            _write(root / keys[name], split, {"split": name, "rows": len(split), "teacher": teacher_path,
                                               "teacher_fingerprint": fingerprint, "max_length": max_length})
    return {name: CachedSplit(stored_split(root / key), key, name in built) for name, key in keys.items()}


def _compute_into(folder: Path, name: str, frame: "pd.DataFrame", compute, teacher_path: str, max_length: int,
                  meta: dict) -> None:
    """Run ``compute`` into a temporary folder beside ``folder``, then rename it into place."""
    def fill(tmp: Path) -> None:
        stats = compute(name, frame, teacher_path, max_length, tmp / "split")
        (tmp / "meta.json").write_text(json.dumps({**meta, "computed": stats}, indent=1))
        with open(folder.parent / SOFT_TARGETS_LOG, "a") as log:
            log.write(json.dumps({"key": folder.name, "split": name, **stats}) + "\n")

    _publish(folder, fill)


def _write(folder: Path, split: EncodedSplit, meta: dict) -> None:
    def fill(tmp: Path) -> None:
        split.save(tmp / "split.npz")
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

    _publish(folder, fill)


def _publish(folder: Path, fill: Callable[[Path], None]) -> None:
    """``fill`` a temporary folder beside ``folder``, then rename it into place: readers never see half a
    split. An error while another builder had already finished the same key is a lost race, not a failure."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    try:
        fill(tmp)
        os.replace(tmp, folder)
    except OSError:
        if stored_split(folder) is None:  # lost a race only if nobody else finished
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def teacher_logits(model, split: EncodedSplit, pad_id: int, batch_size: int, device: str = "cpu",
                   advance: Callable[[int], None] | None = None) -> np.ndarray:
    """Run the teacher over a split in length-sorted batches (little padding).

    Returns:
        float32 ``[N, num_labels]`` logits in the split's original order.
    """
    import torch

    order = np.argsort(split.lengths, kind="stable")
    accepted = inspect.signature(model.forward).parameters  # DistilBERT/RoBERTa-style heads take no token types
    out = np.zeros((len(split), model.config.num_labels), dtype=np.float32)
    with torch.inference_mode(), _autocast(device):
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = {k: torch.from_numpy(v).to(device) for k, v in split.padded(index, pad_id).items() if k in accepted}
            out[index] = model(**batch).logits.float().cpu().numpy()
            if advance:
                advance(len(index))
    return out


def _autocast(device: str):
    import contextlib

    import torch

    if device.startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
