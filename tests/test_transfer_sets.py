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
