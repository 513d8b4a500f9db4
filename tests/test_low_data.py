"""Low-data mode: ``data.train_size`` as examples per class or a stratified fraction, seeded, checked early."""

import pytest

from conftest import tiny_space_raw
from raykd.config import parse_space
from raykd.data.sources import load_split, low_data_sample
from raykd.data.tasks import get_task
from raykd.errors import RaykdInputError


def _data(**data):
    raw = tiny_space_raw({f"data.{k}": v for k, v in data.items()})
    raw["data"].pop("train_limit", None)
    return parse_space(raw).data


def test_a_fraction_of_sst2_keeps_the_label_proportions():
    full = load_split(_data(), get_task("sst2"), "train")
    low = load_split(_data(train_size=0.01), get_task("sst2"), "train", seed=0)
    assert len(low) == round(0.01 * len(full))  # 673 of 67,349
    share_full, share_low = full["label"].mean(), low["label"].mean()
    assert abs(share_full - share_low) < 0.005  # stratified: the same positive share
    assert set(low["text_a"]) <= set(full["text_a"])
    again = load_split(_data(train_size=0.01), get_task("sst2"), "train", seed=0)
    other = load_split(_data(train_size=0.01), get_task("sst2"), "train", seed=1)
    assert again.equals(low) and not other.equals(low)


def test_examples_per_class():
    frame = load_split(_data(train_size=16), get_task("sst2"), "train", seed=3)
    assert frame["label"].value_counts().to_dict() == {0: 16, 1: 16}


def test_regression_takes_fractions_only():
    import pandas as pd

    task = get_task("stsb")
    frame = pd.DataFrame({"text_a": list("abcdefghij"), "text_b": list("abcdefghij"), "label": [0.5] * 10})
    assert len(low_data_sample(frame, task, 0.5, seed=0)) == 5
    with pytest.raises(RaykdInputError, match="regression"):
        low_data_sample(frame, task, 3, seed=0)


@pytest.mark.parametrize("value, message", [(0, ">= 1"), (1.5, r"\(0, 1\)"), (0.0, r"\(0, 1\)"), ("1%", "fraction"),
                                            (True, "fraction")])
def test_impossible_train_sizes_are_refused_when_parsing(value, message):
    with pytest.raises(RaykdInputError, match=message):
        _data(train_size=value)


def test_more_per_class_than_a_class_has_is_refused():
    with pytest.raises(RaykdInputError, match="has only"):
        load_split(_data(train_size=10**6), get_task("sst2"), "train")


def test_validate_states_the_low_data_sample():
    from raykd.checks import check_inputs
    from raykd.plan import describe_plan

    raw = tiny_space_raw({"data.train_size": 8})
    raw["data"].pop("train_limit", None)
    space = parse_space(raw)
    inputs = check_inputs(space)
    assert len(inputs.frames["train"]) == 16
    assert "low-data train_size 8" in describe_plan(space, inputs)
