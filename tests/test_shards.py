"""Sharded splits (raykd.data.shards): parts of a fixed size that join back to the split written."""

import numpy as np
import pytest

from raykd.data.encoding import EncodedSplit
from raykd.data.shards import INDEX_FILE, ShardWriter, is_sharded, iter_shards, load_split, shard_rows_of


def _split(lengths: list[int], start: int = 0, logits: bool = True) -> EncodedSplit:
    """Examples of the given lengths whose token ids count up from ``start`` (so parts are recognisable)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = len(lengths)
    return EncodedSplit(input_ids=np.arange(start, start + offsets[-1], dtype=np.int32),
                        token_type_ids=(np.arange(offsets[-1]) % 2).astype(np.int8), offsets=offsets,
                        labels=np.arange(n, dtype=np.int64),
                        teacher_logits=np.arange(2 * n, dtype=np.float32).reshape(n, 2) if logits else None)


def _assert_same(a: EncodedSplit, b: EncodedSplit) -> None:
    for name in ("input_ids", "token_type_ids", "offsets", "labels", "teacher_logits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_pieces_of_any_size_become_full_parts_that_join_back(tmp_path):
    pieces = [_split([3, 1, 4]), _split([1, 5, 9, 2, 6, 5], start=8), _split([]), _split([3], start=40)]
    whole = EncodedSplit.concat(pieces)
    with ShardWriter(tmp_path / "split", shard_rows=4) as writer:
        for piece in pieces:
            writer.add(piece)
        assert writer.rows == 10
    assert is_sharded(tmp_path / "split") and shard_rows_of(tmp_path / "split") == [4, 4, 2]
    parts = list(iter_shards(tmp_path / "split"))
    assert [len(p) for p in parts] == [4, 4, 2] and all(p.offsets[0] == 0 for p in parts)
    _assert_same(load_split(tmp_path / "split"), whole)
    _assert_same(EncodedSplit.load(tmp_path / "split"), whole)


def test_write_part_keeps_a_part_as_given_after_the_buffered_rows(tmp_path):
    writer = ShardWriter(tmp_path / "split", shard_rows=10)
    writer.add(_split([2, 2, 2], logits=False))
    writer.write_part(_split([1] * 12, logits=False))
    index = writer.close()
    assert index["rows"] == 15 and [s["rows"] for s in index["shards"]] == [3, 12]
    assert load_split(tmp_path / "split").teacher_logits is None


def test_a_single_file_reads_as_one_part_and_an_unfinished_folder_is_refused(tmp_path):
    single = _split([2, 3])
    single.save(tmp_path / "split.npz")
    _assert_same(load_split(tmp_path / "split.npz"), single)
    assert [len(p) for p in iter_shards(tmp_path / "split.npz")] == [2]
    writer = ShardWriter(tmp_path / "unfinished", shard_rows=1)
    writer.add(single)  # parts written, index.json not yet
    assert not is_sharded(tmp_path / "unfinished") and not (tmp_path / "unfinished" / INDEX_FILE).exists()
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "unfinished")


def test_shard_rows_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="shard_rows"):
        ShardWriter(tmp_path / "split", shard_rows=0)
