"""Your own data: label values mapped to the teacher's names, teachers that cannot teach refused, the teacher stage planned.

Real SST-2 text and the real minilm-sst2 teacher and all-MiniLM-L6-v2 encoder from ../shared;
every command runs through the CLI in-process with the no-write harness (conftest.WriteWatch).
"""

from __future__ import annotations

import csv

import pandas as pd
import pytest
import yaml

from conftest import BASE, GLUE, REPO, TEACHER, assert_input_error, invoke_cli, teacher_copy
from raykd.data.tasks import label_key, mapped_labels
from raykd.errors import RaykdInputError

pytestmark = pytest.mark.skipif(not (GLUE / "SST-2" / "dev.tsv").is_file() or not (TEACHER / "config.json").is_file(),
                                reason="needs the shared SST-2 data and teachers")


def _reviews(tmp_path, values=("0", "1"), n=300):
    """SST-2 dev sentences as a review CSV (``review``, ``rating``) with its labels written as ``values``."""
    frame = pd.read_csv(GLUE / "SST-2" / "dev.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str).head(n)
    frame = pd.DataFrame({"review": frame["sentence"], "rating": frame["label"].map(dict(zip("01", values)))})
    for split in ("train", "dev"):
        frame.to_csv(tmp_path / f"reviews_{split}.csv", index=False)
    return tmp_path / "reviews_train.csv", tmp_path / "reviews_dev.csv"


def _space(tmp_path, labels=None, teacher=None, **data) -> str:
    train, dev = _reviews(tmp_path, data.pop("values", ("0", "1")))
    raw = {"name": "reviews", "task": "reviews",
           "data": {"train": str(train), "dev": str(dev), "text_columns": ["review"], "label_column": "rating",
                    "max_length": 48, **data},
           "teacher": teacher or {"path": str(TEACHER)}, "methods": {"vanilla": {}},
           "students": {"bilstm": {"embedding_dim": 16, "hidden_dim": 16}}, "budget": {"num_samples": 1}}
    if labels is not None:
        raw["data"]["labels"] = labels
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


def _validate(tmp_path, space, *extra):
    return invoke_cli(["validate", "--space", space, "--storage", str(tmp_path / "runs"), *extra], [tmp_path, REPO])


# --------------------------------------------------------------------------------------------
# label values


@pytest.mark.parametrize("value", [1, "1", " 1 ", 1.0, "1.0", "+1"])
def test_integers_and_strings_are_one_label_value(value):
    assert label_key(value) == "1"


def test_label_key_keeps_text_and_fractions():
    assert [label_key(v) for v in ("neg", " Sci/Tech ", 0.5, "2.50", None, float("nan"))] == \
        ["neg", "Sci/Tech", "0.5", "2.50", "", ""]


def test_a_mapping_orders_labels_by_the_teachers_ids():
    names, values, aliases = mapped_labels({"pos": "positive", "neg": "negative", "+": "positive"},
                                           ("negative", "positive"))
    assert names == ("negative", "positive") and values == ("neg", "pos") and aliases == (("+", 1),)


def test_a_mapping_for_a_teacher_with_generic_names_takes_ids_or_label_k():
    assert mapped_labels({"neg": "0", "pos": "LABEL_1"}, None)[:2] == (("LABEL_0", "LABEL_1"), ("neg", "pos"))
    # other names (a base encoder to fine-tune): ids in the mapping's order
    assert mapped_labels({"w": "World", "s": "Sports"}, None)[:2] == (("World", "Sports"), ("w", "s"))


@pytest.mark.parametrize("mapping, fragment", [
    ({"0": "negative", "1": "good"}, "maps to 'good', which is not one of the teacher's labels (negative, positive)"),
    ({"0": "negative", "1": "negative"}, "maps no value of your files to the teacher's label 'positive'"),
])
def test_a_mapping_that_misses_the_teacher_is_refused(mapping, fragment):
    with pytest.raises(RaykdInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as err:
        mapped_labels(mapping, ("negative", "positive"))
    assert "data.labels: {0: negative, 1: positive}" in str(err.value)


def test_files_with_0_1_and_a_named_teacher_get_the_mapping_to_write(tmp_path):
    result, writes = _validate(tmp_path, _space(tmp_path))
    assert_input_error(result, writes, ("unknown label '", "task 'reviews' labels are: negative, positive",
                                        "data.labels: {0: negative, 1: positive}"))


def test_a_label_mapping_runs_against_the_ready_teacher(tmp_path):
    result, writes = _validate(tmp_path, _space(tmp_path, labels={0: "negative", 1: "positive"}))
    assert result.exit_code == 0, result.output
    assert not writes
    out = result.stdout
    assert "task reviews: single sentences; labels negative, positive" in out
    # the teacher was loaded and measured on the dev file before anything else
    line = next(line for line in out.splitlines() if "measured before the sweep" in line)
    accuracy = float(line.split("accuracy ")[1].split()[0])
    assert 0.85 < accuracy < 1 and "on dev (300 examples), majority-class baseline 0.5" in line


def test_several_values_may_map_to_one_label(tmp_path):
    space = _space(tmp_path, labels={"bad": "negative", "awful": "negative", "good": "positive"},
                   values=("awful", "good"))
    result, writes = _validate(tmp_path, space)
    assert result.exit_code == 0, result.output
    assert not writes


def test_labels_swapped_are_caught_by_the_teachers_dev_metric(tmp_path):
    result, writes = _validate(tmp_path, _space(tmp_path, labels={0: "positive", 1: "negative"}))
    line = assert_input_error(result, writes, ("does not beat a model that ignores its input",
                                               "its outputs match your labels in another order",
                                               "write data.labels: {0: negative, 1: positive}",
                                               "teacher.allow_weak: true"))
    assert "majority-class baseline 0.5" in line


def test_allow_weak_lets_a_user_go_on(tmp_path):
    space = _space(tmp_path, labels={0: "positive", 1: "negative"},
                   teacher={"path": str(TEACHER), "allow_weak": True})
    result, writes = _validate(tmp_path, space)
    assert result.exit_code == 0 and not writes
    # reported as measured, not hidden
    assert "measured before the sweep: accuracy 0.1033 on dev" in result.stdout
    assert "NOT above the baseline: teacher.allow_weak lets the sweep go on" in result.stdout


def test_labels_in_the_wrong_order_on_a_teacher_named_label_0_label_1(tmp_path):
    generic = teacher_copy(tmp_path / "generic", config={"id2label": {"0": "LABEL_0", "1": "LABEL_1"},
                                                          "label2id": {"LABEL_0": 0, "LABEL_1": 1}})
    space = _space(tmp_path, labels=["positive", "negative"], teacher={"path": str(generic)},
                   values=("negative", "positive"))
    result, writes = _validate(tmp_path, space)
    assert_input_error(result, writes, ("does not beat", "write data.labels: {negative: LABEL_0, positive: LABEL_1}"))
    fixed = _space(tmp_path, labels={"negative": "LABEL_0", "positive": "LABEL_1"}, teacher={"path": str(generic)},
                   values=("negative", "positive"))
    result, writes = _validate(tmp_path, fixed)
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------
# teachers that cannot teach


def test_a_base_encoder_is_not_a_teacher(tmp_path):
    result, writes = _validate(tmp_path, _space(tmp_path, labels={0: "LABEL_0", 1: "LABEL_1"},
                                                teacher={"path": str(BASE)}))
    assert_input_error(result, writes, ("has no trained classification head", "classifier.bias, classifier.weight",
                                        "fine_tune: true"))


def test_a_teacher_without_tokenizer_files_is_refused(tmp_path):
    folder = teacher_copy(tmp_path / "no_tok", drop=("tokenizer.json", "tokenizer_config.json"))
    result, writes = _validate(tmp_path, _space(tmp_path, labels={0: "negative", 1: "positive"},
                                                teacher={"path": str(folder)}))
    assert_input_error(result, writes, ("has no tokenizer files", "5-token vocabulary"))


# --------------------------------------------------------------------------------------------
# a teacher fine-tuned from a base: validate shows the stage


def test_validate_plans_the_teacher_stage_of_a_single_task_space(tmp_path):
    space = _space(tmp_path, labels={0: "negative", 1: "positive"},
                   teacher={"base": str(BASE), "fine_tune": True, "fine_tune_epochs": 2})
    result, writes = _validate(tmp_path, space)
    assert result.exit_code == 0, result.output
    assert not writes and not (tmp_path / "runs").exists()
    out = result.stdout
    assert f"teacher: fine-tuned from {BASE.resolve()} for reviews with a new head of 2 output(s) (negative, positive)" in out
    assert "teacher stage: fine-tune" in out and "(2 epochs, lr 5e-05, batch 32, max_length 48, seed 0)" in out
    assert f"cached in {tmp_path / 'runs' / 'cache' / 'teachers'}/" in out and "not yet" in out
    assert "LABEL_0" not in out  # the base's untrained 2-way head is not shown as the teacher


def test_a_mapping_names_the_fine_tuned_teachers_labels(tmp_path):
    space = _space(tmp_path, labels={0: "bad", 1: "good"}, teacher={"base": str(BASE), "fine_tune": True})
    result, _ = _validate(tmp_path, space)
    assert result.exit_code == 0, result.output
    assert "labels bad, good" in result.stdout


def test_labels_as_yaml_booleans_are_refused(tmp_path):
    space = tmp_path / "space.yaml"
    _space(tmp_path)
    text = (tmp_path / "space.yaml").read_text().replace("label_column: rating", "label_column: rating\n  labels: [no, yes]")
    space.write_text(text)
    result, writes = _validate(tmp_path, str(space))
    assert_input_error(result, writes, ("data.labels: YAML reads false as a boolean", "quote the label"))
