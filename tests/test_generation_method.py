"""The generation method's settings: what keys its transfer set, and what is refused before Ray starts."""

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from conftest import BASE, GLUE, TEACHER, tiny_space_raw
from raykd.checks import check_inputs
from raykd.config import parse_space
from raykd.errors import RaykdInputError
from raykd.methods import generation, vanilla
from raykd.transfer.generators import GENERATOR_BUILDS_LOG, generator_key
from raykd.transfer.store import TransferSource, transfer_key

SOURCE = TransferSource(train_text="t.jsonl", data_fingerprint="d", teacher_path="teacher", teacher_fingerprint="f",
                        max_length=64, cache_dir="/tmp", seed=0, num_labels=2)


def _params(**changes):
    params = {n: s.default for n, s in generation.PARAMS.items()}
    params.update(changes)
    return {n: v for n, v in params.items() if n in generation.active(params)}


def _keys(params):
    return [transfer_key(kind, settings, SOURCE) for kind, settings in generation.transfer_requests(params)]


def test_trials_that_differ_only_in_kd_settings_share_the_generated_set():
    base = _keys(_params())
    assert len(base) == 1  # no augmentation: the generated set alone
    assert _keys(_params(temperature=4.0, alpha=0.5, kd_loss="mse")) == base
    assert _keys(_params(top_p=0.9)) != base and _keys(_params(gen_epochs=11)) != base
    with_tang = _keys(_params(augment="tang"))
    assert with_tang[0] == base[0] and len(with_tang) == 2  # generation + augmentation: both sets
    # vanilla's tang set with the same rates is the same cache entry
    assert with_tang[1] == transfer_key(*vanilla.transfer_requests({"augment": "tang", "p_mask": 0.1, "p_pos": 0.1,
                                                                     "p_ng": 0.25, "n_iter": 0})[0], SOURCE)
    assert vanilla.transfer_requests({"augment": "none"}) == []


def test_settings_exist_only_where_they_matter():
    assert "gen_layers" not in _params(generator="/models/gpt2")
    assert "prefix_tokens" in _params(prompt="prefix") and "prefix_tokens" not in _params()
    assert "p_pos" in _params(augment="tang") and "p_pos" not in _params()
    settings = dict(generation.transfer_requests(_params(generator="/models/gpt2"))[0][1]["generator"])
    assert "layers" not in settings and settings["path"] == "/models/gpt2"


def _space(methods, **data):
    raw = tiny_space_raw({f"data.{k}": v for k, v in data.items()})
    raw["methods"] = methods
    return parse_space(raw)


@pytest.mark.parametrize("settings, message", [
    ({"gen_dim": [96, 128], "gen_heads": 3}, "not a multiple of gen_heads 3"),
    ({"generator": "./no/such/folder"}, "not a folder"),
    ({"generator": "gpt2"}, "model hub is off"),
    ({"gen_pretrain_ood": [False, True]}, "needs an unlabelled corpus"),
])
def test_generators_that_cannot_be_built_are_refused_before_ray(settings, message):
    with pytest.raises(RaykdInputError, match=message):
        check_inputs(_space({"generation": settings}))


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A 1-layer GPT-2 folder standing for a pretrained causal LM (there is no model hub here)."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=16, n_head=2,
                               n_positions=64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _generator_key(params, source=SOURCE):
    from raykd.transfer.generate import GeneratorSettings

    settings = generation.transfer_requests(params)[0][1]
    return generator_key(GeneratorSettings(**settings["generator"]), source, pretrain=settings["pretrain_ood"])


def test_an_unset_gen_lr_follows_the_generator_kind_and_an_explicit_one_wins(tiny_gpt2):
    def lr(**changes):
        return generation.transfer_requests(_params(**changes))[0][1]["generator"]["lr"]

    assert generation.PARAMS["gen_lr"].default == 0  # 0: by generator kind
    assert lr() == 1e-3
    assert lr(generator=str(tiny_gpt2)) == 5e-5
    assert lr(gen_lr=3e-4) == lr(generator=str(tiny_gpt2), gen_lr=3e-4) == 3e-4
    # an unset rate and the same rate given explicitly are one generator and one set
    assert _keys(_params(gen_lr=1e-3)) == _keys(_params())
    assert _generator_key(_params(gen_lr=1e-3)) == _generator_key(_params())
    # the space takes 0 among its choices and refuses a negative rate, before Ray starts
    check_inputs(_space({"generation": {"generator": ["scratch", str(tiny_gpt2)], "gen_lr": [0, 1e-4]}}))
    with pytest.raises(RaykdInputError, match=r"gen_lr must be >= 0"):
        _space({"generation": {"gen_lr": -1e-4}})


def test_the_generator_key_ignores_sampling_settings():
    base = _generator_key(_params())
    for sampling in ({"top_p": 0.9}, {"top_k": 5}, {"sample_temperature": 0.7}, {"multiple": 3.0},
                     {"max_samples": 9}, {"prompt": "prefix", "prefix_tokens": 3}, {"dedup": False}):
        assert _generator_key(_params(**sampling)) == base, sampling
        assert _keys(_params(**sampling)) != _keys(_params()), sampling  # each is still its own transfer set
    for training in ({"gen_epochs": 11}, {"gen_dim": 64}, {"gen_lr": 3e-4}):
        assert _generator_key(_params(**training)) != base, training
    assert _generator_key(_params(), replace(SOURCE, seed=1)) != base
    assert _generator_key(_params(), replace(SOURCE, data_fingerprint="other")) != base
    assert _generator_key(_params(), replace(SOURCE, max_length=128)) == base  # only the teacher's encoding


def _sst2_source(tmp_path, rows: int = 40) -> TransferSource:
    from raykd.teachers.cache import frame_fingerprint, teacher_fingerprint

    frame = pd.read_csv(GLUE / "SST-2" / "train.tsv", sep="\t", quoting=3).head(rows)
    frame = frame.rename(columns={"sentence": "text_a"})
    path = tmp_path / "train.jsonl"
    frame.to_json(path, orient="records", lines=True)
    return TransferSource(train_text=str(path), data_fingerprint=frame_fingerprint(frame), teacher_path=str(TEACHER),
                          teacher_fingerprint=teacher_fingerprint(str(TEACHER)), max_length=64,
                          cache_dir=str(tmp_path / "cache"), seed=0, num_labels=2)


def test_sampling_settings_share_one_trained_generator_and_max_samples_caps_the_set(tmp_path):
    from raykd.transfer.sets import build_transfer_sets

    source = _sst2_source(tmp_path)
    tiny = {"gen_layers": 1, "gen_dim": 32, "gen_heads": 2, "gen_epochs": 4, "gen_lr": 1e-2, "multiple": 1.0}
    log = Path(source.cache_dir) / "generators" / GENERATOR_BUILDS_LOG

    def build(**changes):
        return build_transfer_sets(generation.transfer_requests(_params(**{**tiny, **changes})), source)[0]

    def texts(built):
        return pd.read_json(built.folder / "texts.jsonl", lines=True)["text_a"].tolist()

    plain = build()
    nucleus = build(top_p=0.8, sample_temperature=1.5)
    assert plain.built and nucleus.built and plain.key != nucleus.key  # two transfer sets ...
    assert len(log.read_text().splitlines()) == 1  # ... from one generator training
    assert texts(plain) != texts(nucleus)
    first, second = plain.meta["stats"], nucleus.meta["stats"]
    assert (first["generator_trained"], second["generator_trained"]) == (1.0, 0.0)
    assert first["generator_key"] == second["generator_key"] == log.read_text().split()[0]
    assert (Path(source.cache_dir) / "generators" / first["generator_key"] / "generator.json").is_file()
    # the training statistics reach the set that loaded the generator too
    for name in ("train_seconds", "final_train_loss", "first_epoch_loss", "generator_params"):
        assert first[name] == second[name], name
    assert first["train_seconds"] > 0 and first["final_train_loss"] < first["first_epoch_loss"]

    assert first["requested"] == 40  # multiple 1 x 40 training examples, no cap
    capped = build(max_samples=7)
    assert capped.meta["stats"]["requested"] == 7 and 0 < capped.meta["rows"] <= 7
    assert capped.meta["settings"]["max_samples"] == 7
    assert len(log.read_text().splitlines()) == 1

    longer = build(gen_epochs=5)  # another generator setting: a second training
    assert len(log.read_text().splitlines()) == 2
    assert longer.meta["stats"]["generator_key"] != first["generator_key"]
    assert longer.meta["stats"]["generator_trained"] == 1.0


def test_validate_prints_the_planned_sample_counts_and_generator_trainings(tmp_path, tiny_gpt2):
    from raykd.sweep.preflight import SweepOptions, preflight

    space = _space({"generation": {"generator": ["scratch", str(tiny_gpt2)], "gen_epochs": [2, 3],
                                   "multiple": [2.0, 5.0], "max_samples": [0, 100], "top_p": [0.9, 1.0]}},
                   train_size=16, dev_limit=100)
    space = replace(space, budget=replace(space.budget, num_samples=20))
    text = preflight(space, SweepOptions(storage=str(tmp_path / "runs"), echo=lambda line: None)).describe()
    assert "generation: 32 training examples -> generated per set: 2x -> 64, 5x -> 160 (no cap); " \
           "2x -> 64, 5x -> 100 (max_samples 100)" in text, text
    # scratch and the folder, 2 epoch counts each; top_p and multiple only change the sampling
    assert "generator trainings: at most 4 (4 generator setting combination(s), 20 trials)" in text, text
    assert not (tmp_path / "runs").exists()


def test_plan_lines_bound_the_trainings_by_the_trials():
    from raykd.domains import parse_params

    def plan(raw, trials=6):
        return generation.plan_lines(parse_params(raw, generation.PARAMS, "methods.generation"), 10, trials)

    head, trainings = plan({"multiple": {"low": 1.5, "high": 20.0}, "max_samples": 50})
    assert head == ("generation: 10 training examples -> generated per set (multiple's range ends): 1.5x -> 15, "
                    "20x -> 50 (max_samples 50)")
    assert "at most 1 (1 generator setting" in trainings
    assert "at most 6 (one per trial" in plan({"gen_lr": {"low": 1e-4, "high": 1e-3, "log": True}})[1]
    assert "at most 5 (5 generator setting" in plan({"gen_epochs": {"low": 2, "high": 10, "step": 2}})[1]
    assert "at most 3 (6 generator setting" in plan({"gen_epochs": [2, 3], "gen_dim": [32, 64, 128]}, trials=3)[1]
    assert "at most 1 (1 generator setting" in plan({"gen_lr": [0, 1e-3]})[1]  # 0 resolves to scratch's 1e-3
