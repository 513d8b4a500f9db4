"""Is the teacher a teacher for this task? Its dev metric against the majority-class baseline.

A teacher folder can pass every file check and still teach nothing: a base encoder whose head
transformers initialised at random, labels in another order than the data's, a checkpoint of
another task. :func:`check_teacher` loads the teacher (refusing a missing head or tokenizer, see
:func:`~raykd.teachers.load.load_checked_teacher`), runs it over the task's first eval split and
refuses it when its primary metric does not beat a model that ignores its input (the majority
class; the training mean for regression), before any sweep folder, cache entry or MLflow run is
written. When the teacher's outputs match the data's labels in another order, the message gives
the ``data.labels`` mapping that fixes it (a linear assignment over the confusion matrix).

The dev outputs it computes are handed to the soft-target stage, which stores them in the cache
instead of running the teacher over that split again; results are also kept in memory for the
process, so ``raykd validate`` followed by a sweep in one Python session runs the teacher once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raykd.data.encoding import EncodedSplit
from raykd.data.tasks import TaskSpec
from raykd.errors import RaykdInputError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TeacherCheck", "check_teacher", "weak_teacher_message"]

_MEMO: dict[str, tuple[EncodedSplit, bool]] = {}
"""(teacher weights, eval split, max_length) -> the split with the teacher's logits, for this process."""


@dataclass(frozen=True)
class TeacherCheck:
    """A teacher measured on the task's first eval split.

    Attributes:
        split: the eval split it was measured on (``dev``).
        rows: examples in that split.
        metric_name: the task's primary metric.
        metric: the teacher's value of it.
        metrics: every metric of the task.
        baseline: the majority-class (regression: training-mean) value of the primary metric.
        weak: the teacher does not beat the baseline (only returned with ``allow_weak``).
        encoded: that split tokenised, with the teacher's logits ``[N, C]`` (for the cache).
        from_cache: the logits were read from an earlier sweep's cache, not computed now.
    """

    split: str
    rows: int
    metric_name: str
    metric: float
    metrics: dict[str, float]
    baseline: float
    weak: bool
    encoded: EncodedSplit
    from_cache: bool = False

    def summary(self) -> str:
        """``accuracy 0.8968 on dev (872 examples), majority-class baseline 0.5092``."""
        return (f"{self.metric_name} {self.metric:.4f} on {self.split} ({self.rows:,} examples), majority-class "
                f"baseline {self.baseline:.4f}")


def check_teacher(path: str, task: TaskSpec, frames: dict[str, "pd.DataFrame"], *, max_length: int,
                  batch_size: int = 128, cache_dir: str | Path | None = None, allow_weak: bool = False,
                  device: str = "cpu", role: str = "teacher.path", label_names: tuple[str, ...] = (),
                  fix: str | None = None) -> TeacherCheck:
    """Load and measure a teacher on the task's first eval split; refuse one that cannot teach.

    Args:
        path: the teacher folder or hub id (already through :func:`~raykd.teachers.load.inspect_teacher`).
        task: the task (its labels in the teacher's id order).
        frames: ``train`` (optional: the baseline's majority class comes from it, else from the eval
            split) and the task's eval splits, as read by :func:`raykd.data.sources.load_split`.
        max_length: tokens per example.
        batch_size: examples per teacher forward pass.
        cache_dir: the shared cache; logits an earlier sweep stored there are read instead of computed.
        allow_weak: return a weak teacher (``weak=True``) instead of refusing it.
        device: where the teacher runs.
        role: the setting that named the teacher, for messages.
        label_names: the teacher's own label names in id order, for the ``data.labels`` mapping a refusal
            suggests when the outputs match the data in another order; empty: suggest none (a teacher
            fine-tuned on this data).
        fix: what a refusal suggests otherwise (default: another teacher).

    Returns:
        The :class:`TeacherCheck`.

    Raises:
        RaykdInputError: the teacher has no trained head, no real tokenizer, or (without
            ``allow_weak``) a primary metric no better than the baseline.
    """
    from raykd.data.metrics import compute_metrics, majority_baseline
    from raykd.teachers.cache import cached_split_path, frame_fingerprint, teacher_fingerprint

    split = task.eval_splits[0]
    dev = frames[split]
    reference = frames["train"] if "train" in frames else dev
    key = hashlib.sha256(json.dumps([teacher_fingerprint(path), frame_fingerprint(dev), max_length]).encode()).hexdigest()
    if key not in _MEMO:
        _MEMO[key] = _dev_outputs(path, dev, max_length=max_length, batch_size=batch_size, device=device, role=role,
                                  cached=cached_split_path(cache_dir, path, dev, max_length) if cache_dir else None)
    encoded, from_cache = _MEMO[key]
    metrics = {k: float(v) for k, v in compute_metrics(task, encoded.teacher_logits, encoded.labels).items()}
    base = float(majority_baseline(task, reference["label"].to_numpy(), encoded.labels)[task.primary_metric])
    metric = metrics[task.primary_metric]
    check = TeacherCheck(split=split, rows=len(encoded), metric_name=task.primary_metric, metric=metric,
                         metrics=metrics, baseline=base, weak=not metric > base, encoded=encoded, from_cache=from_cache)
    if check.weak and not allow_weak:
        raise RaykdInputError(weak_teacher_message(check, task, f"{role} {path}", label_names, fix))
    return check


def _dev_outputs(path: str, frame, *, max_length: int, batch_size: int, device: str, role: str,
                 cached: Path | None) -> tuple[EncodedSplit, bool]:
    """The split with the teacher's logits: from the cache when there, else computed.

    The teacher is loaded (so a missing head or tokenizer is refused) unless the cached split was
    stored from an earlier check of a teacher with the very same files (the cache key covers them).
    """
    from raykd.data.encoding import encode_frame
    from raykd.teachers.cache import teacher_logits, teacher_was_checked
    from raykd.teachers.load import load_checked_teacher

    if cached is not None and teacher_was_checked(cached):
        return EncodedSplit.load(cached), True
    model, tokenizer = load_checked_teacher(path, device, role)
    if cached is not None:
        return EncodedSplit.load(cached), True
    encoded = encode_frame(tokenizer, frame, max_length)
    encoded.teacher_logits = teacher_logits(model, encoded, tokenizer.pad_token_id, batch_size, device)
    return encoded, False


def weak_teacher_message(check: TeacherCheck, task: TaskSpec, who: str, label_names: tuple[str, ...] = (),
                         fix: str | None = None) -> str:
    """One line saying a teacher does not beat the baseline, with the label mapping that would fix an order mix-up.

    Args:
        label_names: the teacher's label names in id order; empty for a teacher fine-tuned on this very
            data (its labels are the data's by construction, so no other order is suggested).
        fix: what to suggest when no reordering of the labels helps (default: another teacher).
    """
    line = f"{who} reaches {check.summary()}: it does not beat a model that ignores its input, so it cannot teach {task.name}"
    hint = (_reordered_labels(check, task, label_names) if label_names else "") or fix or (
        "; give a teacher fine-tuned on this task, or fine-tune one with teacher: {base: <encoder>, fine_tune: true}")
    return f"{line}{hint}; set teacher.allow_weak: true to distil from it anyway"


def _sort_key(value: str):
    """Numbers by value, then text: the order a user lists label values in."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _reordered_labels(check: TeacherCheck, task: TaskSpec, label_names: tuple[str, ...]) -> str:
    """``; its outputs match your labels in another order (...): write data.labels: {...}``, or ``""``.

    The order is the linear assignment of teacher outputs to the data's classes that maximises their
    agreement on the eval split; it is suggested only when, read in that order, the teacher's primary
    metric beats the baseline.
    """
    from scipy.optimize import linear_sum_assignment

    from raykd.data.metrics import compute_metrics

    if task.is_regression or task.num_labels < 2:
        return ""
    logits = check.encoded.teacher_logits
    predicted = np.argmax(logits, axis=1)
    gold = np.asarray(check.encoded.labels)
    keep = gold >= 0
    confusion = np.zeros((task.num_labels, task.num_labels))
    np.add.at(confusion, (predicted[keep], gold[keep]), 1)
    outputs, classes = linear_sum_assignment(-confusion)
    if np.array_equal(outputs, classes):
        return ""
    output_of = dict(zip(classes.tolist(), outputs.tolist()))  # the data's class -> the teacher output meaning it
    reordered = logits[:, [output_of[c] for c in range(task.num_labels)]]
    metric = float(compute_metrics(task, reordered, gold)[task.primary_metric])
    if not metric > check.baseline:
        return ""
    names = label_names
    pairs = sorted(output_of.items(), key=lambda p: _sort_key(task.label_values[p[0]]))
    mapping = "{" + ", ".join(f"{task.label_values[c]}: {names[o]}" for c, o in pairs) + "}"
    c, o = next((c, o) for c, o in pairs if c != o)
    return (f"; its outputs match your labels in another order ({task.primary_metric} {metric:.4f} if its label "
            f"{names[o]} means your {task.label_values[c]}): write data.labels: {mapping}")
