"""The shared stage before any trial: teacher soft targets (cached) and the teacher's own figures."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from raykd.checks import CheckedInputs
from raykd.config import SweepConfig
from raykd.data.encoding import EncodedSplit
from raykd.data.metrics import compute_metrics, majority_baseline
from raykd.records import TeacherSummary
from raykd.teachers.cache import CachedSplit, cached_teacher_outputs

__all__ = ["Stage", "build_stage", "rich_progress"]


@dataclass(frozen=True)
class Stage:
    """What the trials share.

    Attributes:
        splits: split name -> cached split with teacher logits (``train`` and eval splits).
        teacher: the teacher's size, dev metrics and latency.
        pad_id: the tokenizer's padding id.
        baseline: majority-class (or mean) dev metrics, the floor of the hypervolume.
    """

    splits: dict[str, CachedSplit]
    teacher: TeacherSummary
    pad_id: int
    baseline: dict[str, float]


@contextlib.contextmanager
def rich_progress() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """A progress-bar factory: ``make(description, total)`` returns ``advance(n)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        def make(description: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)
            return lambda n: bar.advance(task, n)

        yield make


def build_stage(space: SweepConfig, inputs: CheckedInputs, cache_dir: Path, device: str = "cpu",
                progress: bool = True, teacher_check=None, compute=None) -> Stage:
    """Compute (or reuse) the teacher's soft targets and measure the teacher.

    Args:
        space: the sweep's search space.
        inputs: the checked task, teacher and data.
        cache_dir: root of the shared cache.
        device: where the teacher runs (``cuda`` when a GPU is present).
        progress: show progress bars.
        teacher_check: the teacher measured before the sweep
            (:class:`~raykd.teachers.quality.TeacherCheck`): its eval-split outputs are cached as they
            are, not computed again.
        compute: how missing splits are labelled (:func:`raykd.teachers.batch_inference.ray_soft_targets`
            in a sweep: teacher replicas on the cluster); None: in this process on ``device``.
    """
    from raykd.distill.evaluate import measure_latency
    from raykd.students.params import count_parameters
    from raykd.teachers.load import load_teacher, load_tokenizer, teacher_as_student

    with rich_progress() if progress else contextlib.nullcontext() as make:
        splits = cached_teacher_outputs(inputs.teacher.path, inputs.frames, max_length=space.data.max_length,
                                        cache_dir=cache_dir, batch_size=space.teacher.batch_size,
                                        device=device, progress=make,
                                        computed={teacher_check.split: teacher_check.encoded} if teacher_check else None,
                                        compute=compute)
    task, first_eval = inputs.task, inputs.task.eval_splits[0]
    dev = splits[first_eval].load()
    pad_id = load_tokenizer(inputs.teacher.path).pad_token_id
    model = teacher_as_student(load_teacher(inputs.teacher.path))
    metrics = {k: float(v) for k, v in compute_metrics(task, dev.teacher_logits, dev.labels).items()}
    teacher = TeacherSummary(path=inputs.teacher.path, params=count_parameters(model).total,
                             metric=metrics[task.primary_metric], metrics=metrics,
                             latency_ms=measure_latency(model, dev, pad_id))
    # the majority class of the training labels; of the dev labels when no method reads the training split
    train_labels = EncodedSplit.load(splits["train"].path).labels if "train" in splits else dev.labels
    baseline = {k: float(v) for k, v in majority_baseline(task, train_labels, dev.labels).items()}
    return Stage(splits=splits, teacher=teacher, pad_id=pad_id, baseline=baseline)
