"""Sharded splits: an :class:`~raykd.data.encoding.EncodedSplit` stored as a folder of fixed-size parts.

Soft targets for a million GLUE examples, or a Tang transfer set of a few million rows, must never
be held whole by the process that builds them. Builders therefore tokenise, label and write a chunk
at a time through a :class:`ShardWriter`; the folder holds ``shard-00000.npz``, ``shard-00001.npz``,
... (each an ``EncodedSplit`` of at most ``shard_rows`` examples, in order) and ``index.json``
(``{"rows": N, "shards": [{"file": ..., "rows": n}, ...]}``), written last, so a folder without it
is unfinished. A builder's peak memory grows with the shard size, not with the data.

Readers use :func:`load_split`, which takes a single ``.npz`` file or a shard folder, or
:func:`iter_shards` to go through a folder one part at a time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from raykd.data.encoding import EncodedSplit

__all__ = ["ShardWriter", "load_split", "iter_shards", "is_sharded", "shard_rows_of", "INDEX_FILE", "SHARD_ROWS"]

INDEX_FILE = "index.json"
"""The shard folder's table of contents; its presence marks a finished folder."""

SHARD_ROWS = 50_000
"""Default examples per shard: a few MB of tokens and logits per part at ``max_length`` 128."""


class ShardWriter:
    """Append examples to a shard folder, writing a part each time ``shard_rows`` examples are buffered.

    Args:
        folder: where the parts go (created).
        shard_rows: examples per part (the last one may be smaller).

    Raises:
        ValueError: ``shard_rows`` < 1.

    Use as a context manager, or call :meth:`close` once at the end (it writes ``index.json``).
    """

    def __init__(self, folder: str | Path, shard_rows: int = SHARD_ROWS):
        if shard_rows < 1:
            raise ValueError(f"shard_rows must be at least 1, got {shard_rows}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.shard_rows = shard_rows
        self._pending: list[EncodedSplit] = []
        self._pending_rows = 0
        self._shards: list[dict] = []

    @property
    def rows(self) -> int:
        """Examples added so far (written or buffered)."""
        return sum(s["rows"] for s in self._shards) + self._pending_rows

    def add(self, split: EncodedSplit) -> None:
        """Buffer ``split`` (any size) and write every full part."""
        if not len(split):
            return
        self._pending.append(split)
        self._pending_rows += len(split)
        while self._pending_rows >= self.shard_rows:
            self._write(self.shard_rows)

    def write_part(self, split: EncodedSplit) -> None:
        """Write ``split`` as one part as it is (a builder that already made parts of its own size)."""
        self._flush()
        if len(split):
            self._save(split)

    def close(self) -> dict:
        """Write what is buffered and ``index.json``; returns the index."""
        self._flush()
        index = {"rows": sum(s["rows"] for s in self._shards), "shards": self._shards}
        (self.folder / INDEX_FILE).write_text(json.dumps(index, indent=1))
        return index

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()

    def _flush(self) -> None:
        while self._pending_rows:
            self._write(min(self._pending_rows, self.shard_rows))

    def _write(self, rows: int) -> None:
        joined = self._pending[0] if len(self._pending) == 1 else EncodedSplit.concat(self._pending)
        part, rest = _take(joined, rows)
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)
        self._save(part)

    def _save(self, split: EncodedSplit) -> None:
        name = f"shard-{len(self._shards):05d}.npz"
        split.save(self.folder / name)
        self._shards.append({"file": name, "rows": len(split)})


def _take(split: EncodedSplit, rows: int) -> tuple[EncodedSplit, EncodedSplit]:
    """The first ``rows`` examples and the rest, as two splits with offsets from 0."""
    cut = int(split.offsets[rows])

    def part(lo: int, hi: int, tok_lo: int, tok_hi: int) -> EncodedSplit:
        return EncodedSplit(input_ids=split.input_ids[tok_lo:tok_hi], token_type_ids=split.token_type_ids[tok_lo:tok_hi],
                            offsets=split.offsets[lo:hi + 1] - split.offsets[lo], labels=split.labels[lo:hi],
                            teacher_logits=None if split.teacher_logits is None else split.teacher_logits[lo:hi])

    return part(0, rows, 0, cut), part(rows, len(split), cut, int(split.offsets[-1]))


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` is a finished shard folder."""
    return (Path(path) / INDEX_FILE).is_file()


def shard_rows_of(path: str | Path) -> list[int]:
    """Examples per part of a shard folder, in order.

    Raises:
        FileNotFoundError: not a finished shard folder.
    """
    return [s["rows"] for s in json.loads((Path(path) / INDEX_FILE).read_text())["shards"]]


def iter_shards(path: str | Path) -> Iterator[EncodedSplit]:
    """The parts of a shard folder in order, one in memory at a time (a ``.npz`` file: itself).

    Raises:
        FileNotFoundError: neither a ``.npz`` file nor a finished shard folder.
    """
    path = Path(path)
    if path.is_file():
        yield EncodedSplit.load(path)
        return
    for shard in json.loads((path / INDEX_FILE).read_text())["shards"]:
        yield EncodedSplit.load(path / shard["file"])


def load_split(path: str | Path) -> EncodedSplit:
    """A whole split from a ``.npz`` file or a shard folder (its parts joined in order).

    Raises:
        FileNotFoundError: neither a ``.npz`` file nor a finished shard folder.
    """
    return EncodedSplit.load(path)  # which reads a shard folder as well
