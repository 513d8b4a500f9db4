"""Tokenised splits: the teacher's tokenisation of a task split, stored flat in numpy.

An :class:`EncodedSplit` is what the teacher-output cache stores and what a trial trains on:
token ids of every example (concatenated, with offsets), segment ids, labels and, once the
teacher has seen them, its logits. It holds numpy arrays only, so it loads fast in every Ray
worker and is cheap to write to shared storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EncodedSplit", "encode_frame"]


@dataclass
class EncodedSplit:
    """N tokenised examples with labels and (optionally) the teacher's logits.

    Attributes:
        input_ids: int32 ``[sum of lengths]``, every example's ids one after the other.
        token_type_ids: int8 ``[sum of lengths]``, 0 for the first segment, 1 for the second.
        offsets: int64 ``[N + 1]``; example ``i`` spans ``offsets[i]:offsets[i + 1]``.
        labels: ``[N]`` int64 class ids or float32 scores; -1 / NaN where unlabelled.
        teacher_logits: float32 ``[N, C]`` soft-target logits, or None before the teacher ran.
    """

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    teacher_logits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """int64 ``[N]``: tokens per example, special tokens included."""
        return np.diff(self.offsets)

    def padded(self, index: np.ndarray, pad_id: int) -> dict[str, np.ndarray]:
        """Pad the examples at ``index`` to their longest length.

        Returns:
            ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``[B, T]``.
        """
        lengths = self.lengths[index]
        width = int(lengths.max()) if len(index) else 0
        ids = np.full((len(index), width), pad_id, dtype=np.int64)
        types = np.zeros((len(index), width), dtype=np.int64)
        mask = np.arange(width)[None, :] < lengths[:, None]
        flat = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in index]) if len(index) else []
        ids[mask] = self.input_ids[flat]
        types[mask] = self.token_type_ids[flat]
        return {"input_ids": ids, "attention_mask": mask.astype(np.int64), "token_type_ids": types}

    def save(self, path: str | Path) -> None:
        """Write to one ``.npz`` file."""
        arrays = {k: v for k, v in vars(self).items() if v is not None}
        np.savez(path, **arrays)

    @classmethod
    def concat(cls, parts: "list[EncodedSplit]") -> "EncodedSplit":
        """One split holding ``parts`` in order (the training split plus transfer sets, say).

        Teacher logits are kept only if every part has them. Labels take the first part's dtype
        (int -1 / float NaN mark rows without a gold label).
        """
        lengths = np.concatenate([p.lengths for p in parts])
        logits = [p.teacher_logits for p in parts]
        return cls(
            input_ids=np.concatenate([p.input_ids for p in parts]),
            token_type_ids=np.concatenate([p.token_type_ids for p in parts]),
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            labels=np.concatenate([p.labels for p in parts]).astype(parts[0].labels.dtype),
            teacher_logits=None if any(x is None for x in logits) else np.concatenate(logits),
        )

    @classmethod
    def load(cls, path: str | Path) -> "EncodedSplit":
        """Read a file written by :meth:`save`, or a shard folder (:mod:`raykd.data.shards`) whole."""
        if Path(path).is_dir():  # a shard folder (raykd.data.shards): its parts in order, joined
            import json

            index = json.loads((Path(path) / "index.json").read_text())
            parts = [cls.load(Path(path) / shard["file"]) for shard in index["shards"]]
            if not parts:
                raise FileNotFoundError(f"{path} holds no shards")
            return parts[0] if len(parts) == 1 else cls.concat(parts)
        with np.load(path) as data:
            return cls(**{k: data[k] for k in data.files})


def encode_frame(tokenizer, frame: "pd.DataFrame", max_length: int) -> EncodedSplit:
    """Tokenise a split with the teacher's (fast) tokenizer.

    Args:
        tokenizer: a Hugging Face tokenizer.
        frame: ``text_a``, optional ``text_b``, ``label`` columns.
        max_length: truncation length in tokens, special tokens included.
    """
    texts = [frame["text_a"].tolist()]
    if "text_b" in frame:
        texts.append(frame["text_b"].tolist())
    enc = tokenizer(*texts, truncation=True, max_length=max_length, return_token_type_ids=True)
    lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(frame))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return EncodedSplit(
        input_ids=np.fromiter((t for x in enc["input_ids"] for t in x), dtype=np.int32, count=offsets[-1]),
        token_type_ids=np.fromiter((t for x in enc["token_type_ids"] for t in x), dtype=np.int8, count=offsets[-1]),
        offsets=offsets,
        labels=frame["label"].to_numpy(),
    )
