"""Transfer sets are a cached stage: built once per (settings, data, teacher, seed), shared and reused."""

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import GLUE, TEACHER
from raykd.data.encoding import EncodedSplit
from raykd.teachers.cache import frame_fingerprint, teacher_fingerprint
from raykd.transfer.sets import build_transfer_sets
from raykd.transfer.store import BUILDS_LOG, TransferSource


def _source(tmp_path, rows: int = 40, seed: int = 0) -> TransferSource:
    frame = pd.read_csv(GLUE / "SST-2" / "train.tsv", sep="\t", quoting=3).head(rows)
    frame = frame.rename(columns={"sentence": "text_a"})
    path = tmp_path / f"train{rows}.jsonl"
    frame.to_json(path, orient="records", lines=True)
    return TransferSource(train_text=str(path), data_fingerprint=frame_fingerprint(frame), teacher_path=str(TEACHER),
                          teacher_fingerprint=teacher_fingerprint(str(TEACHER)), max_length=64,
                          cache_dir=str(tmp_path / "cache"), seed=seed, num_labels=2)


def _builds(source: TransferSource) -> list[str]:
    log = Path(source.cache_dir) / "transfer_sets" / BUILDS_LOG
    return log.read_text().splitlines() if log.is_file() else []


TANG = ("tang", {"p_mask": 0.1, "p_pos": 0.1, "p_ng": 0.25, "n_iter": 5})


def test_concurrent_trials_share_one_build_and_later_sweeps_reuse_it(tmp_path):
    """Three concurrent requests for the same set build it once (the counter); a later request reads it."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401  (lazy imports are not thread-safe)

    source = _source(tmp_path)
    results = []

    def trial():
        results.append(build_transfer_sets([TANG], source)[0])

    threads = [threading.Thread(target=trial) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and len(_builds(source)) == 1
    assert sum(s.built for s in results) == 1 and len({s.key for s in results}) == 1
    again = build_transfer_sets([TANG], source)[0]  # a later sweep on the same storage
    assert not again.built and len(_builds(source)) == 1
    other = build_transfer_sets([("tang", {**TANG[1], "p_mask": 0.3})], source)[0]  # other settings: own set
    assert other.built and other.key != again.key and len(_builds(source)) == 2
    reseeded = build_transfer_sets([TANG], _source(tmp_path, seed=1))[0]  # other seed: own set
    assert reseeded.built and reseeded.key != again.key


def test_a_set_holds_teacher_labelled_text_without_gold_labels(tmp_path):
    source = _source(tmp_path)
    built = build_transfer_sets([TANG], source)[0]
    split = built.load()
    texts = pd.read_json(built.folder / "texts.jsonl", lines=True)
    assert len(split) == len(texts) == built.meta["rows"] > 40  # several novel copies per sentence
    assert (split.labels == -1).all()
    assert split.teacher_logits.shape == (len(split), 2) and np.isfinite(split.teacher_logits).all()
    originals = set(source.read_train()["text_a"].str.split().str.join(" "))
    assert not set(texts["text_a"]) & originals
    assert "[MASK]" in " ".join(texts["text_a"])
    meta = json.loads((built.folder / "meta.json").read_text())
    assert meta["settings"] == TANG[1] and meta["stats"]["source_examples"] == 40
    shown = built.examples.splitlines()
    assert shown[0].startswith("# tang transfer set") and len(shown) == 31
    # the teacher's label in examples.txt agrees with the stored logits
    first = texts.index[texts["text_a"] == shown[1].split("] ", 1)[1]][0]
    assert shown[1].startswith(f"[{int(split.teacher_logits[first].argmax())} ")


def test_concat_keeps_the_gold_rows_first_and_marks_the_rest_unlabelled(tmp_path):
    source = _source(tmp_path, rows=10)
    gold = EncodedSplit(input_ids=np.arange(6, dtype=np.int32), token_type_ids=np.zeros(6, np.int8),
                        offsets=np.array([0, 2, 6]), labels=np.array([1, 0]),
                        teacher_logits=np.zeros((2, 2), np.float32))
    extra = build_transfer_sets([TANG], source)[0].load()
    both = EncodedSplit.concat([gold, extra])
    assert len(both) == 2 + len(extra) and both.labels.dtype == gold.labels.dtype
    assert list(both.labels[:2]) == [1, 0] and (both.labels[2:] == -1).all()
    np.testing.assert_array_equal(both.padded(np.array([1]), 0)["input_ids"][0], np.arange(2, 6))
    np.testing.assert_array_equal(both.teacher_logits[2:], extra.teacher_logits)


def test_an_empty_set_is_an_error_not_a_cache_entry(tmp_path):
    source = _source(tmp_path, rows=5)
    nothing = ("tang", {"p_mask": 0.0, "p_pos": 0.0, "p_ng": 0.0, "n_iter": 2})  # no rule ever fires
    with pytest.raises(RuntimeError, match="empty"):
        build_transfer_sets([nothing], source)
    assert _builds(source) == []


RATES = {"p_mask": 0.1, "p_pos": 0.1, "p_ng": 0.25, "n_iter": 5}


def _tang_builder(chunk_rows: int | None):
    """A Tang builder returning one frame (``chunk_rows`` None) or a generator of chunks that fills its stats."""
    from raykd.transfer.augment import TangSettings, tang_augment, tang_chunks

    rates = TangSettings(**RATES)

    def build(train):
        if chunk_rows is None:
            frame = tang_augment(train, rates, seed=0)
            return frame, {"augmented": len(frame)}
        stats = {}

        def frames():
            rows = 0
            for chunk in tang_chunks(train, rates, seed=0, chunk_rows=chunk_rows):
                rows += len(chunk)
                yield chunk
            stats["augmented"] = rows

        return frames(), stats

    return build


def test_a_set_built_in_shards_matches_a_one_shot_build(tmp_path, monkeypatch):
    """Two shard sizes and a chunked builder give the one-shot set: same texts, tokens and teacher logits."""
    from dataclasses import replace

    import raykd.transfer.store as store
    from raykd.data.encoding import encode_frame
    from raykd.data.shards import shard_rows_of
    from raykd.teachers.cache import teacher_logits
    from raykd.teachers.load import load_teacher, load_tokenizer
    from raykd.transfer.store import ensure_transfer_set

    monkeypatch.setattr(store, "ENCODE_ROWS", 4)  # shards are tokenised in parts too
    source = _source(tmp_path, rows=20)
    sets = {(chunks, shard): ensure_transfer_set("tang", RATES, replace(source, cache_dir=str(tmp_path / f"c{chunks}-{shard}")),
                                                 _tang_builder(chunks), shard_rows=shard)
            for chunks, shard in ((None, 10_000), (3, 7), (16, 50))}
    one_shot = sets[None, 10_000]
    texts = pd.read_json(one_shot.folder / "texts.jsonl", lines=True)
    tokenizer = load_tokenizer(source.teacher_path)
    reference = encode_frame(tokenizer, texts.assign(label=-1), source.max_length)  # what the store did before shards
    reference.teacher_logits = teacher_logits(load_teacher(source.teacher_path), reference, tokenizer.pad_token_id, 128)
    assert len({s.key for s in sets.values()}) == 1  # the shard size is not part of the key
    for (chunks, shard), built in sets.items():
        split, meta = built.load(), built.meta
        assert len(split) == len(texts) == meta["rows"] == meta["stats"]["augmented"] > 50
        assert (built.folder / "texts.jsonl").read_bytes() == (one_shot.folder / "texts.jsonl").read_bytes()
        assert (built.folder / "examples.txt").read_text() == one_shot.examples  # the sample ignores the shard size
        for name in ("input_ids", "token_type_ids", "offsets", "labels"):
            np.testing.assert_array_equal(getattr(split, name), getattr(reference, name))
        np.testing.assert_allclose(split.teacher_logits, reference.teacher_logits, atol=1e-5)
        full, last = divmod(meta["rows"], shard)
        assert shard_rows_of(built.split_path) == [shard] * full + ([last] if last else [])
        assert meta["shards"] == full + bool(last) and meta["shard_rows"] == shard
        assert [len(part) for part in built.shards()] == shard_rows_of(built.split_path)
    assert sets[3, 7].meta["shards"] >= 8
    assert "shards=" in _builds(replace(source, cache_dir=str(tmp_path / "c3-7")))[0]


def test_a_set_cached_before_sharding_still_loads(tmp_path):
    """A folder with one split.npz (the layout before shards) is read as a cache hit, whole or as one shard."""
    from raykd.transfer.store import ensure_transfer_set, transfer_key

    source = _source(tmp_path, rows=5)
    folder = Path(source.cache_dir) / "transfer_sets" / transfer_key(*TANG, source)
    folder.mkdir(parents=True)
    old = EncodedSplit(input_ids=np.arange(5, dtype=np.int32), token_type_ids=np.zeros(5, np.int8),
                       offsets=np.array([0, 2, 5]), labels=np.array([-1, -1]), teacher_logits=np.ones((2, 2), np.float32))
    old.save(folder / "split.npz")
    (folder / "meta.json").write_text(json.dumps({"kind": "tang", "rows": 2}))

    def never(train):
        raise AssertionError("a cached set must not be rebuilt")

    cached = ensure_transfer_set(*TANG, source, never)
    assert not cached.built and cached.split_path == folder / "split.npz"
    np.testing.assert_array_equal(cached.load().input_ids, old.input_ids)
    assert [len(part) for part in cached.shards()] == [2]
    with pytest.raises(ValueError, match="shard_rows"):
        ensure_transfer_set("tang", {**TANG[1], "p_mask": 0.2}, source, never, shard_rows=0)


def test_the_training_text_reads_in_parts_as_it_reads_whole(tmp_path, monkeypatch):
    import raykd.transfer.store as store

    source = _source(tmp_path, rows=40)
    monkeypatch.setattr(store, "SHARD_ROWS", 7)  # 6 parts
    pd.testing.assert_frame_equal(source.read_train(), pd.read_json(source.train_text, lines=True))
    (tmp_path / "empty.jsonl").write_text("")
    from dataclasses import replace

    assert replace(source, train_text=str(tmp_path / "empty.jsonl")).read_train().empty
