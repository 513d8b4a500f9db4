"""Data-free sweeps never open the task's training file, and impossible data-free settings are refused early."""

import sys
from pathlib import Path

import pytest

from conftest import GLUE, tiny_space_raw
from raykd.checks import check_inputs
from raykd.config import parse_space
from raykd.errors import RaykdInputError

SST2_TRAIN = (GLUE / "SST-2" / "train.tsv").resolve()
QNLI_DEV = GLUE / "QNLI" / "dev.tsv"


def data_free_raw(**methods):
    raw = tiny_space_raw({"name": "datafree", "data.ood": str(QNLI_DEV), "data.ood_limit": 300,
                          "data.dev_limit": 200})
    raw["data"].pop("train_limit")
    raw["methods"] = methods or {"zero_shot": {"generator": ["noise", "perturb"]}, "random_tokens": {}}
    return raw


@pytest.fixture()
def opened_files():
    """Every file path opened by this process while the test runs (a Python audit hook)."""
    seen: list[str] = []
    active = [True]

    def hook(event, args):
        if active[0] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
            seen.append(str(args[0]))

    sys.addaudithook(hook)  # hooks cannot be removed; the flag turns this one off
    yield seen
    active[0] = False


def test_a_data_free_sweep_never_opens_the_training_file(opened_files, tmp_path):
    from raykd.sweep.stage import build_stage

    space = parse_space(data_free_raw())
    inputs = check_inputs(space)
    stage = build_stage(space, inputs, tmp_path / "cache", progress=False)
    assert set(inputs.frames) == {"dev", "ood"} and set(stage.splits) == {"dev", "ood"}
    assert len(inputs.frames["ood"]) == 300
    opened = {str(p) for p in opened_files}
    assert any("QNLI" in p for p in opened)  # the hook sees the files that are read...
    assert not any(p.endswith("SST-2/train.tsv") or "SST-2/train" in p for p in opened), sorted(opened)


def test_with_a_with_data_method_in_the_sweep_the_training_file_is_read(opened_files):
    raw = data_free_raw(vanilla={}, zero_shot={})
    raw["data"]["train_limit"] = 500
    inputs = check_inputs(parse_space(raw))
    assert {"train", "dev", "ood"} == set(inputs.frames)
    assert any(p.endswith("SST-2/train.tsv") for p in opened_files)


def test_the_data_layer_refuses_the_training_split_when_told():
    from raykd.data.sources import load_split, task_train_data_forbidden
    from raykd.data.tasks import get_task

    space = parse_space(data_free_raw())
    with task_train_data_forbidden("every method of this sweep is data-free"), \
            pytest.raises(RaykdInputError, match="training split may not be read"):
        load_split(space.data, get_task("sst2"), "train")


@pytest.mark.parametrize(("change", "message"), [
    (lambda raw: raw["data"].update(ood=str(SST2_TRAIN)), "task's own training file"),
    (lambda raw: raw["data"].pop("ood"), "needs an out-of-domain corpus: set data.ood"),
    (lambda raw: raw["resources"].update(num_workers=2), "one worker per trial"),
    (lambda raw: raw["methods"]["zero_shot"].update(gen_space=["gumbel_vocab", "embedding"]),
     "set methods.zero_shot.projection: true"),
])
def test_impossible_data_free_settings_are_refused_before_ray(change, message):
    raw = data_free_raw()
    change(raw)
    with pytest.raises(RaykdInputError, match=message):
        check_inputs(parse_space(raw))


def test_projection_makes_the_embedding_space_valid_for_a_narrow_student():
    raw = data_free_raw(zero_shot={"gen_space": "embedding", "projection": True})
    check_inputs(parse_space(raw))


@pytest.mark.parametrize(("methods", "message"), [
    ({"as_dfd": {"gen_length": 80}}, r"gen_length 80 plus \[CLS\]/\[SEP\] makes 82 tokens, more than data.max_length"),
    ({"zero_shot": {"gen_length": [8, 70]}}, "methods.zero_shot.gen_length 70"),
    ({"as_dfd": {}}, "set methods.as_dfd.projection: true"),  # the tiny space's BiLSTM embeds narrower
])
def test_as_dfd_and_generated_lengths_are_checked_before_ray(methods, message):
    with pytest.raises(RaykdInputError, match=message):
        check_inputs(parse_space(data_free_raw(**methods)))


def test_as_dfd_with_projection_is_accepted_and_regression_is_refused():
    from raykd.checks import _check_data_free
    from raykd.data.tasks import get_task
    from raykd.teachers.load import inspect_teacher

    raw = data_free_raw(as_dfd={"projection": True})
    raw["data"].pop("ood")  # as_dfd needs no out-of-domain corpus
    space = parse_space(raw)
    assert set(check_inputs(space).frames) == {"dev"}
    with pytest.raises(RaykdInputError, match="as_dfd: stsb is a regression task"):
        _check_data_free(space, ["as_dfd"], inspect_teacher(space.teacher.path).config, get_task("stsb"))


def test_the_plan_says_the_training_split_is_not_read():
    from raykd.plan import describe_plan

    space = parse_space(data_free_raw())
    assert "data-free (zero_shot, random_tokens): the training split is never opened" in describe_plan(
        space, check_inputs(space))
    mixed = parse_space(data_free_raw(vanilla={}, zero_shot={}))
    assert "which only vanilla reads" in describe_plan(mixed, check_inputs(mixed))
