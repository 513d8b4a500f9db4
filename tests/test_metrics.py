"""Task metrics on cases small enough to check by hand, and the majority baseline."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from raykd.data import METRIC_NAMES, compute_metrics, get_task, majority_baseline  # noqa: E402
from raykd.data import read_glue  # noqa: E402
from raykd.errors import RaykdInputError  # noqa: E402

GLUE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"


def _one_hot(ids, classes=2):
    return np.eye(classes)[np.asarray(ids)]


def test_metric_names():
    assert METRIC_NAMES == ("accuracy", "f1", "matthews", "pearson", "spearman")


def test_accuracy_uses_argmax_of_logits():
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [-5.0, 5.0], [1.0, 0.0]])  # predicts 0, 1, 1, 0
    assert compute_metrics(get_task("sst2"), logits, np.array([0, 1, 0, 0])) == {"accuracy": 0.75}


def test_f1_is_binary_f1_of_class_1():
    # predicted 1 1 0 0 1, gold 1 0 0 1 1: tp=2, fp=1, fn=1 -> f1 = 2*2 / (2*2 + 1 + 1) = 2/3
    result = compute_metrics(get_task("mrpc"), _one_hot([1, 1, 0, 0, 1]), np.array([1, 0, 0, 1, 1]))
    assert list(result) == ["f1", "accuracy"]
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["accuracy"] == pytest.approx(3 / 5)


def test_f1_without_positives_is_zero():
    result = compute_metrics(get_task("qqp"), _one_hot([0, 0, 0]), np.array([0, 0, 0]))
    assert result == {"f1": 0.0, "accuracy": 1.0}


def test_matthews_by_hand():
    # tp=1, tn=1, fp=1, fn=1 -> (1*1 - 1*1) / sqrt(2*2*2*2) = 0; perfect -> 1; inverted -> -1
    cola = get_task("cola")
    assert compute_metrics(cola, _one_hot([1, 0, 1, 0]), np.array([1, 0, 0, 1]))["matthews"] == 0.0
    assert compute_metrics(cola, _one_hot([1, 0, 1]), np.array([1, 0, 1]))["matthews"] == 1.0
    assert compute_metrics(cola, _one_hot([0, 1, 0]), np.array([1, 0, 1]))["matthews"] == -1.0
    # tp=2, tn=1, fp=1, fn=0 -> (2*1 - 1*0) / sqrt(3*2*2*1) = 2/sqrt(12)
    value = compute_metrics(cola, _one_hot([1, 1, 1, 0]), np.array([1, 1, 0, 0]))["matthews"]
    assert value == pytest.approx(2 / np.sqrt(12))


def test_three_class_accuracy():
    outputs = _one_hot([0, 1, 2, 2], classes=3)
    assert compute_metrics(get_task("mnli"), outputs, np.array([0, 1, 2, 1])) == {"accuracy": 0.75}


def test_pearson_and_spearman_by_hand():
    stsb = get_task("stsb")
    gold = np.array([1.0, 2.0, 3.0, 4.0])
    assert compute_metrics(stsb, 2 * gold + 1, gold) == pytest.approx(
        {"pearson": 1.0, "spearman": 1.0}
    )
    # monotone but not linear: spearman 1, pearson < 1; [N, 1] outputs are accepted
    result = compute_metrics(stsb, (gold**3)[:, None], gold)
    assert result["spearman"] == pytest.approx(1.0)
    assert 0.9 < result["pearson"] < 1.0
    assert compute_metrics(stsb, -gold, gold) == pytest.approx({"pearson": -1.0, "spearman": -1.0})


def test_constant_prediction_gives_zero_correlation_not_nan():
    result = compute_metrics(get_task("stsb"), np.full(4, 2.5), np.array([1.0, 2.0, 3.0, 4.0]))
    assert result == {"pearson": 0.0, "spearman": 0.0}


@pytest.mark.parametrize(
    "task, outputs, labels, fragment",
    [
        ("sst2", np.zeros((3, 3)), np.array([0, 1, 0]), "2 classes"),
        ("sst2", np.zeros((2, 2)), np.array([0, 1, 0]), "3 labels"),
        ("sst2", np.zeros(3), np.array([0, 1, 0]), "shape"),
        ("sst2", np.zeros((2, 2)), np.array([-1, -1]), "unlabelled"),
        ("stsb", np.zeros((3, 2)), np.array([1.0, 2.0, 3.0]), "one output"),
        ("stsb", np.zeros(2), np.array([np.nan, np.nan]), "unlabelled"),
    ],
)
def test_bad_inputs_raise(task, outputs, labels, fragment):
    with pytest.raises(RaykdInputError, match=fragment):
        compute_metrics(get_task(task), outputs, labels)


def test_majority_baseline_by_hand():
    result = majority_baseline(get_task("mrpc"), np.array([1, 1, 0]), np.array([1, 0, 0, 1]))
    assert result == pytest.approx({"f1": 2 / 3, "accuracy": 0.5})


def test_majority_baseline_regression_predicts_constant_mean():
    result = majority_baseline(get_task("stsb"), np.array([0.0, 5.0]), np.array([1.0, 2.0, 3.0]))
    assert result == {"pearson": 0.0, "spearman": 0.0}


def test_majority_baseline_on_real_sst2_dev():
    if not GLUE_DIR.is_dir():
        pytest.skip(f"shared GLUE data not found at {GLUE_DIR}")
    sst2 = get_task("sst2")
    train = read_glue(GLUE_DIR, sst2, "train")["label"].to_numpy()
    dev = read_glue(GLUE_DIR, sst2, "dev")["label"].to_numpy()
    result = majority_baseline(sst2, train, dev)  # train majority is class 1 (positive)
    assert result["accuracy"] == pytest.approx(444 / 872)
    assert round(result["accuracy"], 4) == 0.5092
