"""Generation-distillation transfer sets (raykd.transfer.generate): tiny generators on real GLUE text."""

import csv
import itertools
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from raykd.transfer.generate import (
    GeneratedSet,
    Generator,
    GeneratorSettings,
    SamplingSettings,
    generate_transfer_set,
)

SHARED = Path(__file__).parents[2] / "shared"
GLUE = SHARED / "data" / "glue"
BERT = SHARED / "models" / "all-MiniLM-L6-v2"
TINY = {"layers": 1, "dim": 32, "heads": 2}
MEMO = ["the movie was wonderful and moving", "a dull , lifeless mess of a film",
        "surprisingly funny from start to finish"]
STAT_KEYS = {"requested", "drawn", "kept", "duplicates", "no_separator", "empty", "generator_params",
             "final_train_loss", "train_seconds", "sample_seconds"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+|[^\w\s]", text.lower()))


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(BERT)


@pytest.fixture(scope="module")
def sst2() -> list[str]:
    frame = pd.read_csv(GLUE / "SST-2" / "train.tsv", sep="\t").sample(n=200, random_state=0)
    return frame["sentence"].tolist()


@pytest.fixture(scope="module")
def sst2_generator(sst2, tokenizer) -> Generator:
    settings = GeneratorSettings(**TINY, epochs=4, lr=1e-2, batch_size=16)
    return Generator.train(sst2, None, settings, tokenizer=tokenizer, seed=0, progress=False)


@pytest.fixture(scope="module")
def memo_generator(tokenizer) -> Generator:
    """Trained to memorise three sentences (24 copies, loss near zero)."""
    settings = GeneratorSettings(**TINY, epochs=40, lr=1e-2, batch_size=8)
    return Generator.train(MEMO * 8, None, settings, tokenizer=tokenizer, seed=0, progress=False)


def test_scratch_loss_goes_down(sst2_generator):
    losses = sst2_generator.losses
    vocab = sst2_generator.train_stats["vocab_size"]
    assert len(losses) == 4
    assert losses[0] < math.log(vocab) + 0.5  # the first epoch starts near uniform over the compact vocabulary
    assert losses[-1] < losses[0] - 0.8, losses
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    # compact vocabulary: far fewer rows than the teacher's 30,522
    assert 500 < vocab < 3000
    assert sst2_generator.model.get_input_embeddings().num_embeddings == vocab


def test_sample_stats_and_counts(sst2_generator):
    result = sst2_generator.sample(30, SamplingSettings(), seed=0)
    assert isinstance(result, GeneratedSet)
    assert STAT_KEYS <= set(result.stats)
    assert list(result.frame.columns) == ["text_a"]
    assert result.stats["kept"] == len(result.frame) == 30
    outcomes = ("kept", "duplicates", "no_separator", "empty", "truncated")
    assert result.stats["drawn"] == sum(result.stats[k] for k in outcomes)
    assert all(text == text.strip() and text for text in result.frame["text_a"])


def test_samples_use_only_corpus_words(tokenizer):
    corpus = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog", "a dog saw the cat on a log"]
    settings = GeneratorSettings(**TINY, epochs=15, lr=1e-2, batch_size=8)
    generator = Generator.train(corpus * 6, None, settings, tokenizer=tokenizer, seed=1, progress=False)
    result = generator.sample(40, SamplingSettings(dedup=False), seed=1)
    allowed = set().union(*map(_words, corpus))
    assert len(result.frame) == 40
    for text in result.frame["text_a"]:
        assert _words(text) <= allowed, text
    assert generator.train_stats["vocab_size"] == 1 + len(allowed)  # end-of-text + the corpus words


def test_dedup_against_training_text(memo_generator):
    training = {_norm(t) for t in MEMO} | {"a dull, lifeless mess of a film"}  # as the teacher tokenizer decodes it
    raw = memo_generator.sample(40, SamplingSettings(dedup=False), seed=0)
    copies = raw.frame["text_a"].map(_norm).isin(training).mean()
    assert copies > 0.8, raw.frame["text_a"].tolist()
    deduped = memo_generator.sample(40, SamplingSettings(dedup=True), seed=0)
    assert not deduped.frame["text_a"].map(_norm).isin(training).any()
    assert deduped.frame["text_a"].map(_norm).is_unique
    assert deduped.stats["duplicates"] > deduped.stats["kept"]
    assert deduped.stats["drawn"] <= 4 * 40  # the draw cap


def test_pairs_have_both_sides(tokenizer):
    frame = pd.read_csv(GLUE / "MRPC" / "train.tsv", sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8-sig").head(100)
    frame = frame.rename(columns={"#1 String": "text_a", "#2 String": "text_b"})
    settings = GeneratorSettings(**TINY, epochs=8, lr=1e-2, batch_size=16, max_tokens=128)
    result = generate_transfer_set(frame, settings, SamplingSettings(), 20, tokenizer=tokenizer, seed=0,
                                   progress=False)
    assert list(result.frame.columns) == ["text_a", "text_b"]
    assert len(result.frame) > 0
    assert (result.frame["text_a"].str.len() > 0).all() and (result.frame["text_b"].str.len() > 0).all()
    assert result.stats["no_separator"] > 0  # a weak generator does drop the separator sometimes: those are counted


def test_prefix_prompts_start_with_a_training_prefix(sst2_generator, tokenizer, sst2):
    def squash(text: str) -> str:
        return re.sub(r"\s+", "", text.lower())

    ids = tokenizer(sst2, add_special_tokens=False)["input_ids"]
    prefixes = {squash(tokenizer.decode(row[:3])) for row in ids if len(row) > 3}

    def share(result) -> float:
        return result.frame["text_a"].map(lambda t: any(squash(t).startswith(p) for p in prefixes)).mean()

    prefixed = sst2_generator.sample(30, SamplingSettings(prompt="prefix", prefix_tokens=3, dedup=False), seed=0)
    assert share(prefixed) == 1.0, prefixed.frame["text_a"].tolist()
    free = sst2_generator.sample(30, SamplingSettings(prompt="first_token", dedup=False), seed=0)
    assert share(free) < 0.8  # the check can fail: first-token prompts do not reproduce 3-token prefixes


def test_same_seed_same_samples(tokenizer, sst2):
    settings = GeneratorSettings(**TINY, epochs=2, lr=1e-2, batch_size=32)
    frame = pd.DataFrame({"text_a": sst2[:100]})
    sampling = SamplingSettings(top_k=50, top_p=0.95, temperature=0.9)
    first = generate_transfer_set(frame, settings, sampling, 20, tokenizer=tokenizer, seed=3, progress=False)
    second = generate_transfer_set(frame, settings, sampling, 20, tokenizer=tokenizer, seed=3, progress=False)
    other = generate_transfer_set(frame, settings, sampling, 20, tokenizer=tokenizer, seed=4, progress=False)
    pd.testing.assert_frame_equal(first.frame, second.frame)
    assert first.stats["final_train_loss"] == second.stats["final_train_loss"]
    assert first.frame["text_a"].tolist() != other.frame["text_a"].tolist()


def test_pretrain_texts_widen_the_vocabulary(tokenizer, sst2):
    settings = GeneratorSettings(**TINY, epochs=3, lr=1e-2, batch_size=16)
    plain = Generator.train(MEMO, None, settings, tokenizer=tokenizer, seed=0, progress=False)
    widened = Generator.train(MEMO, None, settings, tokenizer=tokenizer, seed=0, pretrain_texts=sst2[:50],
                              progress=False)
    assert len(plain.losses) == 3 and len(widened.losses) == 6
    assert "pretrain_loss" in widened.train_stats and "pretrain_loss" not in plain.train_stats
    assert widened.train_stats["vocab_size"] > plain.train_stats["vocab_size"] + 100
    ood = tokenizer(sst2[0], add_special_tokens=False)["input_ids"]
    assert set(ood) <= set(widened.codec.compact)
    # prompts come from the task text only
    firsts = {widened.codec.compact[tokenizer.convert_tokens_to_ids(w)] for w in ("the", "a", "surprisingly")}
    assert {row[0] for row in widened.examples} == firsts
    sampled = widened.sample(20, SamplingSettings(dedup=False), seed=0).frame["text_a"]
    assert all(t.startswith(("the", "a", "surprisingly")) for t in sampled), sampled.tolist()  # "a" + "##ly": "aly"


def test_pretrained_folder_fine_tunes_through_the_same_loop(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "tiny-gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2,
                               n_positions=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    settings = GeneratorSettings(path=str(folder), epochs=25, lr=1e-2, batch_size=8)
    generator = Generator.train(MEMO * 8, MEMO[::-1] * 8, settings, tokenizer=None, seed=0, progress=False)
    tab = generator.codec.tokenizer.convert_tokens_to_ids("[TAB]")
    assert generator.codec.sep == tab == len(tokenizer)  # BERT's tokenizer drops "\t": a new special token
    assert generator.model.get_input_embeddings().num_embeddings == len(tokenizer) + 1
    assert generator.codec.eos == tokenizer.sep_token_id  # no eos token: [SEP] ends a text
    assert generator.losses[0] > 9 and generator.losses[-1] < 1.0, generator.losses
    result = generator.sample(10, SamplingSettings(dedup=False, batch_size=16), seed=0)
    assert len(result.frame) > 0
    allowed = set().union(*map(_words, MEMO))
    rows = list(result.frame[["text_a", "text_b"]].itertuples(index=False))
    assert all(a and b for a, b in rows)
    # the full 30k vocabulary stays reachable (unlike a compact one), but fine-tuning made corpus words dominant
    assert sum(_words(a) | _words(b) <= allowed for a, b in rows) >= 0.5 * len(rows), rows
    # saved and loaded, it keeps its added [TAB] separator and draws the same samples
    generator.save(tmp_path / "saved")
    loaded = Generator.load(tmp_path / "saved", tokenizer=None)
    assert loaded.codec.sep == tab and loaded.pairs
    again = loaded.sample(10, SamplingSettings(dedup=False, batch_size=16), seed=0)
    pd.testing.assert_frame_equal(result.frame, again.frame)


def test_saved_scratch_generator_samples_like_the_trained_one(tmp_path, sst2_generator, tokenizer):
    sst2_generator.save(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"model", Generator.STATE_FILE}  # no tokenizer: the teacher's
    loaded = Generator.load(tmp_path, tokenizer=tokenizer)
    assert loaded.settings == sst2_generator.settings and loaded.losses == sst2_generator.losses
    assert loaded.train_stats == sst2_generator.train_stats and loaded.examples == sst2_generator.examples
    assert loaded.train_keys == sst2_generator.train_keys
    assert not loaded.model.training
    sampling = SamplingSettings(top_k=20, temperature=1.3)
    pd.testing.assert_frame_equal(sst2_generator.sample(25, sampling, seed=5).frame,
                                  loaded.sample(25, sampling, seed=5).frame)


def test_unset_learning_rate_follows_the_generator_kind(tmp_path):
    from raykd.transfer.generators import PRETRAINED_LR, SCRATCH_LR

    assert (SCRATCH_LR, PRETRAINED_LR) == (1e-3, 5e-5)
    assert GeneratorSettings().lr == SCRATCH_LR
    assert GeneratorSettings(path=str(tmp_path / "gpt2")).lr == PRETRAINED_LR
    assert GeneratorSettings(path=str(tmp_path / "gpt2"), lr=2e-4).lr == 2e-4  # an explicit value wins
    assert GeneratorSettings(lr=2e-4).lr == 2e-4
    with pytest.raises(ValueError, match="lr must be > 0"):
        GeneratorSettings(lr=0.0)


def test_pretrained_path_rejects_too_long_sequences(tmp_path, tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    folder = tmp_path / "short-gpt2"
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2,
                               n_positions=16)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ValueError, match="max_tokens"):
        Generator.train(MEMO, None, GeneratorSettings(path=str(folder), max_tokens=64), tokenizer=None, seed=0,
                        progress=False)


@pytest.mark.parametrize("make, match", [
    (lambda: GeneratorSettings(dim=32, heads=3), "heads"),
    (lambda: GeneratorSettings(max_tokens=1), "max_tokens"),
    (lambda: SamplingSettings(prompt="beam"), "prompt"),
    (lambda: SamplingSettings(prefix_tokens=0), "prefix_tokens"),
    (lambda: SamplingSettings(top_p=0.0), "top_p"),
    (lambda: SamplingSettings(top_p=1.5), "top_p"),
    (lambda: SamplingSettings(temperature=0.0), "temperature"),
    (lambda: SamplingSettings(top_k=-1), "top_k"),
])
def test_impossible_settings(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_impossible_inputs(tokenizer, memo_generator):
    settings = GeneratorSettings(**TINY, epochs=1)
    with pytest.raises(ValueError, match="empty corpus"):
        Generator.train([], None, settings, tokenizer=tokenizer, seed=0, progress=False)
    with pytest.raises(ValueError, match="empty after tokenisation"):
        Generator.train(["", "   "], None, settings, tokenizer=tokenizer, seed=0, progress=False)
    with pytest.raises(ValueError, match="pretrain_texts"):
        Generator.train(MEMO, None, settings, tokenizer=tokenizer, seed=0, pretrain_texts=[], progress=False)
    with pytest.raises(ValueError, match="differ in length"):
        Generator.train(MEMO, MEMO[:1], settings, tokenizer=tokenizer, seed=0, progress=False)
    with pytest.raises(ValueError, match="tokenizer"):
        Generator.train(MEMO, None, settings, tokenizer=None, seed=0, progress=False)
    with pytest.raises(ValueError, match="longer than prefix_tokens"):
        memo_generator.sample(5, SamplingSettings(prompt="prefix", prefix_tokens=20), seed=0)
    with pytest.raises(ValueError, match=">= 0"):
        memo_generator.sample(-1, SamplingSettings(), seed=0)
    assert memo_generator.sample(0, SamplingSettings(), seed=0).stats["kept"] == 0


def test_batches_pad_to_the_longest_and_mask_the_padding():
    import torch

    from raykd.transfer.generate import _batches

    examples = [[5] * n + [0] for n in (1, 6, 3, 2, 9)]
    batches = list(_batches(examples, 2, 0, torch.Generator().manual_seed(0)))
    assert [ids.shape[0] for ids, _, _ in batches] == [2, 2, 1]
    seen = []
    for ids, mask, labels in batches:
        lengths = mask.sum(1).tolist()
        assert ids.shape[1] == max(lengths)
        assert ((labels == -100) == (mask == 0)).all() and (labels[mask == 1] == ids[mask == 1]).all()
        seen += lengths
    assert sorted(seen) == sorted(map(len, examples))
    again = list(_batches(examples, 2, 0, torch.Generator().manual_seed(0)))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
