"""Tang et al. 2019 transfer-set augmentation (raykd.transfer.augment): the rules, one at a time.

Fast (no Ray, no torch): each rule is isolated by setting the other rates to 0, and one test runs
the default rules on the first 200 sentences of the shared SST-2 training set.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path

import pandas as pd
import pytest

from raykd.errors import RaykdInputError
from raykd.transfer.augment import TangSettings, _tag_words, pos_lexicon, tang_augment, tang_chunks

SST2_TRAIN = Path(__file__).resolve().parents[2] / "shared/data/glue/SST-2/train.tsv"

# Distinct word counts, so an output with every word kept in place maps back to its source.
SENTENCES = [
    "a charming and often affecting journey",
    "the movie is a dull , lifeless mess of bad jokes",
    "it 's a smart , funny and tender film",
    "the actors give strong performances in a weak script about love and loss",
]
PAIRS = pd.DataFrame({
    "text_a": ["the cat sat on the mat near the old red door"],
    "text_b": ["a dog ran in the park under the tall green trees"],
})


def _frame(texts=SENTENCES) -> pd.DataFrame:
    return pd.DataFrame({"text_a": list(texts), "label": range(len(texts))})


def _tags(text: str) -> list[str]:
    """Pattern's tags of a whitespace-tokenised sentence, checked to align with its words."""
    from textblob.en.taggers import PatternTagger

    tagged = PatternTagger().tag(text, tokenize=False)
    assert [word for word, _ in tagged] == text.split()
    return [tag for _, tag in tagged]


def test_same_seed_same_output_other_seed_differs():
    first = tang_augment(_frame(), TangSettings(), seed=3)
    again = tang_augment(_frame(), TangSettings(), seed=3)
    other = tang_augment(_frame(), TangSettings(), seed=4)
    pd.testing.assert_frame_equal(first, again)
    assert list(first["text_a"]) != list(other["text_a"])


def test_mask_rate_one_masks_every_word():
    out = tang_augment(_frame(), TangSettings(p_mask=1.0, p_pos=0.0, p_ng=0.0), seed=0, mask_token="<mask>")
    # Every pass gives the same all-mask string per length, so one survives per distinct length.
    assert sorted(len(text.split()) for text in out["text_a"]) == sorted(len(s.split()) for s in SENTENCES)
    assert all(set(text.split()) == {"<mask>"} for text in out["text_a"])


def test_pos_swaps_keep_the_tag_and_the_length():
    lexicon = pos_lexicon(SENTENCES)
    by_length = {len(s.split()): s for s in SENTENCES}
    out = tang_augment(_frame(), TangSettings(p_mask=0.0, p_pos=1.0, p_ng=0.0), seed=0)
    assert len(out) > len(SENTENCES)
    for text in out["text_a"]:
        words = text.split()
        source = by_length[len(words)]
        for word, original, tag in zip(words, source.split(), _tags(source)):
            assert word in lexicon[tag], (word, original, tag)


def test_ngram_rate_one_cuts_to_a_window_of_one_to_five_words():
    out = tang_augment(_frame(), TangSettings(p_mask=0.0, p_pos=0.0, p_ng=1.0), seed=0)
    assert len(out) > 0
    for text in out["text_a"]:
        words = text.split()
        assert 1 <= len(words) <= 5
        windows = (s.split()[i:i + len(words)] for s in SENTENCES for i in range(len(s.split())))
        assert words in windows, text


def test_outputs_are_novel_even_against_untidy_whitespace():
    texts = SENTENCES + ["  short   one  ", "x"]
    out = tang_augment(_frame(texts), TangSettings(), seed=1)
    originals = {" ".join(t.split()) for t in texts}
    assert out["text_a"].is_unique
    assert not originals & set(out["text_a"])
    assert list(out.columns) == ["text_a"]


def test_passes_bound_the_output_and_defaults_follow_the_paper():
    assert TangSettings().iterations(is_pair=False) == 20
    assert TangSettings().iterations(is_pair=True) == 10
    assert TangSettings(n_iter=7).iterations(is_pair=True) == 7
    out = tang_augment(_frame(), TangSettings(p_mask=0.5, n_iter=3), seed=0)
    assert 0 < len(out) <= 3 * len(SENTENCES)


def test_pairs_change_one_side_two_thirds_of_the_time():
    out = tang_augment(PAIRS, TangSettings(p_mask=0.5, p_pos=0.0, p_ng=0.0, n_iter=300), seed=0)
    assert list(out.columns) == ["text_a", "text_b"]
    same_a = out["text_a"] == PAIRS["text_a"][0]
    same_b = out["text_b"] == PAIRS["text_b"][0]
    assert not (same_a & same_b).any()
    # Expected shares 1/3 each (half of 2/3 per side, 1/3 both); ~280 outputs give a 0.03 std.
    for share in (same_a.mean(), same_b.mean(), (~same_a & ~same_b).mean()):
        assert abs(share - 1 / 3) < 0.12, (same_a.mean(), same_b.mean())


def test_progress_counts_every_source_example():
    calls: list[int] = []
    tang_augment(_frame(), TangSettings(n_iter=2), seed=0, progress=calls.append)
    assert calls and sum(calls) == len(SENTENCES)


@pytest.mark.parametrize("kwargs", [
    {"p_mask": -0.1}, {"p_pos": 1.5}, {"p_ng": math.nan}, {"p_mask": 0.6, "p_pos": 0.5}, {"n_iter": 0},
])
def test_settings_reject_bad_rates(kwargs):
    with pytest.raises(ValueError):
        TangSettings(**kwargs)


def test_frame_without_text_a_is_rejected():
    with pytest.raises(ValueError, match="text_a"):
        tang_augment(pd.DataFrame({"sentence": ["a b"]}), TangSettings(), seed=0)


class _MisalignedTagger:
    """Adds a token to multi-word input, and splits the word 'two-part' in two."""

    def tag(self, text, tokenize=True):
        words = text.split(" ")
        if len(words) > 1:
            return [(w, "NN") for w in words] + [("", "NN")]
        return [("two", "CD"), ("part", "NN")] if text == "two-part" else [(text, "JJ")]


def test_a_misaligned_tagging_falls_back_to_word_by_word():
    assert _tag_words(_MisalignedTagger(), ["good", "two-part", "film"]) == ("JJ", None, "JJ")
    assert _tag_words(_MisalignedTagger(), []) == ()


@pytest.mark.skipif(not SST2_TRAIN.is_file(), reason="needs the shared SST-2 training set")
def test_real_sst2_sentences_give_many_novel_examples():
    texts = pd.read_csv(SST2_TRAIN, sep="\t", quoting=csv.QUOTE_NONE)["sentence"].head(200)
    lexicon = pos_lexicon(texts)
    assert {"NN", "JJ"} <= set(lexicon) and any(tag.startswith("VB") for tag in lexicon)
    started = time.perf_counter()
    out = tang_augment(pd.DataFrame({"text_a": texts}), TangSettings(), seed=0)
    seconds = time.perf_counter() - started
    # A pass leaves an L-word sentence untouched by the word rules with probability 0.8**L, so
    # 20 * (1 - 0.8**L) passes per sentence change a word; duplicates (mostly among short phrases)
    # remove some, the n-gram cut adds some. Observed: 2624 (13.1 per sentence, about 1 s).
    changed = sum(20 * (1 - 0.8 ** len(t.split())) for t in texts)
    assert len(out) > 5 * len(texts) and len(out) > 0.5 * changed, (len(out), changed)
    assert not set(out["text_a"]) & {" ".join(t.split()) for t in texts}
    assert seconds < 10


def _joined(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(chunks, ignore_index=True)


@pytest.mark.parametrize("frame", [
    _frame(SENTENCES + SENTENCES[:2]),  # repeats: novelty must span chunks
    pd.DataFrame({"text_a": [s.split(" a ")[0] for s in SENTENCES] + list(PAIRS["text_a"]),
                  "text_b": SENTENCES + list(PAIRS["text_b"])}),
], ids=["sentences", "pairs"])
def test_chunks_join_to_the_one_shot_output_for_every_chunk_size(frame):
    whole = tang_augment(frame, TangSettings(n_iter=6), seed=2)
    assert len(whole) > len(frame)
    for chunk_rows in (1, 2, 3, len(frame) + 5):
        chunks = list(tang_chunks(frame, TangSettings(n_iter=6), seed=2, chunk_rows=chunk_rows))
        pd.testing.assert_frame_equal(_joined(chunks), whole)
        assert all(0 < len(chunk) <= 6 * chunk_rows and chunk.index[0] == 0 for chunk in chunks)
    assert len(chunks) == 1


@pytest.mark.skipif(not SST2_TRAIN.is_file(), reason="needs the shared SST-2 training set")
def test_chunks_of_real_sentences_match_the_one_shot_output():
    texts = pd.read_csv(SST2_TRAIN, sep="\t", quoting=csv.QUOTE_NONE)["sentence"].head(120)
    frame = pd.DataFrame({"text_a": texts})
    whole = tang_augment(frame, TangSettings(), seed=7)
    pd.testing.assert_frame_equal(_joined(list(tang_chunks(frame, TangSettings(), seed=7, chunk_rows=17))), whole)


def test_an_original_in_a_later_chunk_is_never_an_output_of_an_earlier_one():
    later = "often affecting journey"  # a 3-word window of the first sentence, and an original itself
    frame = _frame(SENTENCES + [later])
    chunks = list(tang_chunks(frame, TangSettings(p_mask=0.0, p_pos=0.0, p_ng=1.0, n_iter=200), seed=0, chunk_rows=1))
    out = _joined(chunks)["text_a"]
    assert out.is_unique and later not in set(out)
    assert "affecting journey" in set(out)  # the window rule did reach that part of the first sentence


def test_chunked_progress_counts_every_source_example():
    calls: list[int] = []
    list(tang_chunks(_frame(), TangSettings(n_iter=2), seed=0, chunk_rows=3, progress=calls.append))
    assert calls == [3, 1]


@pytest.mark.parametrize("frame, chunk_rows", [(pd.DataFrame({"sentence": ["a b"]}), 10), (_frame(), 0)])
def test_bad_chunked_input_is_rejected_at_the_call(frame, chunk_rows):
    with pytest.raises(RaykdInputError):
        tang_chunks(frame, TangSettings(), seed=0, chunk_rows=chunk_rows)  # no next(): raised eagerly
