"""The generation method's settings: what keys its transfer set, and what is refused before Ray starts."""

import pytest

from conftest import tiny_space_raw
from raykd.checks import check_inputs
from raykd.config import parse_space
from raykd.errors import RaykdInputError
from raykd.methods import generation, vanilla
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
