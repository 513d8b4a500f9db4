"""The GLUE task table, task lookup and custom tasks."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import dataclasses  # noqa: E402

import pytest  # noqa: E402

from raykd.data import GLUE_TASKS, TaskSpec, custom_task, get_task  # noqa: E402
from raykd.errors import RaykdInputError  # noqa: E402

EXPECTED = {
    # name: (glue dir, text fields, label names, label values in glue_data files, metrics)
    "sst2": ("SST-2", ("sentence",), ("negative", "positive"), ("0", "1"), ("accuracy",)),
    "cola": ("CoLA", ("sentence",), ("unacceptable", "acceptable"), ("0", "1"), ("matthews",)),
    "mrpc": (
        "MRPC", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), ("0", "1"),
        ("f1", "accuracy"),
    ),
    "qqp": (
        "QQP", ("question1", "question2"), ("not_duplicate", "duplicate"), ("0", "1"),
        ("f1", "accuracy"),
    ),
    "stsb": ("STS-B", ("sentence1", "sentence2"), (), (), ("pearson", "spearman")),
    "mnli": (
        "MNLI", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"),
        ("entailment", "neutral", "contradiction"), ("accuracy",),
    ),
    "qnli": (
        "QNLI", ("question", "sentence"), ("entailment", "not_entailment"),
        ("entailment", "not_entailment"), ("accuracy",),
    ),
    "rte": (
        "RTE", ("sentence1", "sentence2"), ("entailment", "not_entailment"),
        ("entailment", "not_entailment"), ("accuracy",),
    ),
    "wnli": (
        "WNLI", ("sentence1", "sentence2"), ("not_entailment", "entailment"), ("0", "1"),
        ("accuracy",),
    ),
}


def test_table_has_the_nine_glue_tasks():
    assert set(GLUE_TASKS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_entry(name):
    glue_dir, fields, names, values, metrics = EXPECTED[name]
    spec = GLUE_TASKS[name]
    assert spec.name == name
    assert spec.glue_dir_name == glue_dir
    assert spec.text_fields == fields
    assert spec.label_names == names
    assert spec.label_values == values
    assert spec.metrics == metrics
    assert spec.primary_metric == metrics[0]
    assert spec.hub == ("nyu-mll/glue", name)
    assert spec.is_pair == (len(fields) == 2)


def test_regression_and_label_counts():
    assert GLUE_TASKS["stsb"].is_regression and GLUE_TASKS["stsb"].num_labels == 1
    assert GLUE_TASKS["mnli"].num_labels == 3
    assert GLUE_TASKS["sst2"].num_labels == 2 and not GLUE_TASKS["sst2"].is_regression


def test_eval_splits():
    assert GLUE_TASKS["mnli"].eval_splits == ("dev_matched", "dev_mismatched")
    assert all(GLUE_TASKS[n].eval_splits == ("dev",) for n in EXPECTED if n != "mnli")


def test_specs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        GLUE_TASKS["sst2"].name = "other"


@pytest.mark.parametrize(
    "alias, name",
    [
        ("SST-2", "sst2"), ("sst2", "sst2"), ("sst-2", "sst2"), ("Sst_2", "sst2"),
        ("STS-B", "stsb"), ("stsb", "stsb"), ("CoLA", "cola"), ("MRPC", "mrpc"),
        (" rte ", "rte"), ("MNLI", "mnli"), ("QQP", "qqp"), ("qnli", "qnli"), ("WNLI", "wnli"),
    ],
)
def test_get_task_aliases(alias, name):
    assert get_task(alias) is GLUE_TASKS[name]


def test_unknown_task_lists_valid_names():
    with pytest.raises(RaykdInputError) as info:
        get_task("sst5")
    message = str(info.value)
    assert "sst5" in message
    assert all(name in message for name in EXPECTED)
    assert "\n" not in message


def test_custom_classification_task():
    spec = custom_task("reviews", ["text"], ["bad", "good", "great"])
    assert spec.label_names == spec.label_values == ("bad", "good", "great")
    assert spec.num_labels == 3 and not spec.is_pair
    assert spec.primary_metric == "accuracy"
    assert spec.glue_dir_name is None and spec.hub is None


def test_custom_pair_task_with_f1():
    spec = custom_task("dupes", ("q1", "q2"), ["0", "1"], metric="f1")
    assert spec.is_pair and spec.primary_metric == "f1"
    assert spec.metrics == ("f1", "accuracy")


def test_custom_regression_task():
    spec = custom_task("scores", ["a", "b"], None, metric="spearman")
    assert spec.is_regression and spec.num_labels == 1
    assert spec.metrics == ("spearman", "pearson")
    assert custom_task("scores2", ["a"], [], metric="pearson").is_regression


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(name="x", text_fields=["t"], labels=None), "regression"),  # accuracy default
        (dict(name="x", text_fields=["t"], labels=["a", "b"], metric="pearson"), "classification"),
        (dict(name="x", text_fields=["t"], labels=["a", "b"], metric="bleu"), "accuracy, f1"),
        (dict(name="x", text_fields=["t"], labels=["a", "b", "c"], metric="f1"), "2 labels"),
        (dict(name="x", text_fields=["t"], labels=["a", "a"]), "distinct"),
        (dict(name="x", text_fields=["t"], labels=["a"]), "distinct"),
        (dict(name="x", text_fields=["a", "b", "c"], labels=["a", "b"]), "one or two"),
        (dict(name="SST-2", text_fields=["t"], labels=["a", "b"]), "GLUE task"),
        (dict(name="my task!", text_fields=["t"], labels=["a", "b"]), "not valid"),
    ],
)
def test_custom_task_errors(kwargs, fragment):
    with pytest.raises(RaykdInputError, match=fragment):
        custom_task(**kwargs)


def test_taskspec_checks_label_values_length():
    with pytest.raises(RaykdInputError, match="label_values"):
        TaskSpec("t", ("a",), ("x", "y"), ("0",), ("accuracy",))
