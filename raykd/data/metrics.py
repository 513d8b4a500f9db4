"""Task metrics (GLUE's choices) computed with scikit-learn and SciPy.

scikit-learn and SciPy are imported on first use, so ``import raykd.data`` stays quick.
"""

from __future__ import annotations

import warnings

import numpy as np

from raykd.data.tasks import CLASSIFICATION_METRICS, REGRESSION_METRICS, TaskSpec
from raykd.errors import RaykdInputError

__all__ = ["METRIC_NAMES", "compute_metrics", "majority_baseline"]

METRIC_NAMES = CLASSIFICATION_METRICS + REGRESSION_METRICS


def compute_metrics(task: TaskSpec, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Score a model's outputs on labelled examples.

    Args:
        task: The task; every metric in ``task.metrics`` is computed.
        outputs: Classification: logits or probabilities ``[N, C]`` with ``C == task.num_labels``
            (the prediction is the argmax). Regression: scores ``[N]`` or ``[N, 1]``.
        labels: Class ids ``[N]`` (int) or gold scores ``[N]`` (float).

    Returns:
        ``{metric: value}`` in ``task.metrics`` order. ``f1`` is the binary F1 of class 1
        (0.0 when class 1 is never predicted and never true). When predictions or labels are
        constant (or there is only one example), Pearson and Spearman correlations are
        undefined; they are returned as 0.0
        (no linear or rank relation), never NaN, so a sweep can still rank the trial.

    Raises:
        RaykdInputError: If shapes disagree with each other or with the task, there are no
            examples, or the labels are missing (``-1`` / NaN, as in unlabelled splits).
    """
    labels = np.asarray(labels)
    if task.is_regression:
        predictions = _regression_outputs(task, outputs, len(labels))
        gold = _regression_labels(task, labels)
    else:
        predictions = _class_predictions(task, outputs, len(labels))
        gold = _class_labels(task, labels)
    return {name: _METRIC_FUNCTIONS[name](gold, predictions) for name in task.metrics}


def majority_baseline(
    task: TaskSpec, train_labels: np.ndarray, eval_labels: np.ndarray
) -> dict[str, float]:
    """Metrics of a model that ignores its input.

    Classification predicts the most frequent training class (the lowest id on a tie);
    regression predicts the training mean, whose correlations are 0.0 by the convention of
    :func:`compute_metrics`.

    Args:
        task: The task.
        train_labels: Training class ids or scores ``[N_train]``.
        eval_labels: Evaluation class ids or scores ``[N_eval]``.

    Returns:
        ``{metric: value}`` as :func:`compute_metrics` returns it.

    Raises:
        RaykdInputError: If either label array is empty or holds missing labels.
    """
    eval_labels = np.asarray(eval_labels)
    if task.is_regression:
        mean = float(np.mean(_regression_labels(task, np.asarray(train_labels))))
        return compute_metrics(task, np.full(len(eval_labels), mean), eval_labels)
    counts = np.bincount(_class_labels(task, np.asarray(train_labels)), minlength=task.num_labels)
    outputs = np.zeros((len(eval_labels), task.num_labels))
    outputs[:, int(np.argmax(counts))] = 1.0
    return compute_metrics(task, outputs, eval_labels)


def _class_predictions(task: TaskSpec, outputs, n: int) -> np.ndarray:
    outputs = np.asarray(outputs)
    if outputs.ndim != 2 or outputs.shape != (n, task.num_labels):
        raise RaykdInputError(
            f"task '{task.name}': outputs of shape {outputs.shape} do not match {n} labels and "
            f"{task.num_labels} classes; the model's output layer must have "
            f"{task.num_labels} classes in the task's label order"
        )
    return outputs.argmax(axis=1)


def _regression_outputs(task: TaskSpec, outputs, n: int) -> np.ndarray:
    outputs = np.asarray(outputs, dtype=np.float64)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        outputs = outputs[:, 0]
    if outputs.shape != (n,):
        raise RaykdInputError(
            f"task '{task.name}' is regression: outputs must be [N] or [N, 1] scores for "
            f"{n} labels, got shape {outputs.shape}; use a model with one output"
        )
    return outputs


def _class_labels(task: TaskSpec, labels: np.ndarray) -> np.ndarray:
    if labels.ndim != 1 or len(labels) == 0:
        raise RaykdInputError(f"task '{task.name}': labels must be a non-empty [N] array")
    values = labels.astype(np.float64)
    valid = np.isfinite(values) & (values == np.round(values))
    if not valid.all() or values.min() < 0 or values.max() >= task.num_labels:
        raise RaykdInputError(
            f"task '{task.name}': labels must be class ids 0..{task.num_labels - 1}; "
            "-1 marks an unlabelled split (e.g. GLUE test files), which cannot be scored"
        )
    return labels.astype(np.int64)


def _regression_labels(task: TaskSpec, labels: np.ndarray) -> np.ndarray:
    labels = labels.astype(np.float64)
    if labels.ndim != 1 or len(labels) == 0 or not np.isfinite(labels).all():
        raise RaykdInputError(
            f"task '{task.name}': scores must be a non-empty [N] array of finite numbers; "
            "NaN marks an unlabelled split, which cannot be scored"
        )
    return labels


def _accuracy(gold: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(gold, predicted))


def _f1(gold: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, predicted, pos_label=1, average="binary", zero_division=0.0))


def _matthews(gold: np.ndarray, predicted: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, predicted))


def _correlation(method: str):
    def score(gold: np.ndarray, predicted: np.ndarray) -> float:
        from scipy import stats

        if len(gold) < 2:
            return 0.0  # undefined for a single example, like a constant input
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            value = float(getattr(stats, method)(gold, predicted)[0])
        return value if np.isfinite(value) else 0.0

    return score


_METRIC_FUNCTIONS = {
    "accuracy": _accuracy,
    "f1": _f1,
    "matthews": _matthews,
    "pearson": _correlation("pearsonr"),
    "spearman": _correlation("spearmanr"),
}
