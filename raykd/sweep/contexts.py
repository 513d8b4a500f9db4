"""What the trials of a sweep share, built once by the driver from the checked inputs and the stages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from raykd.config import SweepConfig
from raykd.trial.plan import TrialContext

__all__ = ["trial_context", "transfer_source", "low_data_summary"]


def trial_context(space: SweepConfig, inputs, stage, sweep_dir: Path, *, loopback: bool = False) -> TrialContext:
    """What every trial of one task shares: the cached splits, the teacher's figures, where checkpoints go.

    Args:
        loopback: the trials run on raykd's own local instance (no ``--address``); there the trial
            that first needs a transfer set builds it, on a cluster a Ray task of
            ``stages.transfer_sets`` does.
    """
    task = inputs.task
    cache = {name: str(split.path) for name, split in stage.splits.items()}
    transfer = transfer_source(space, inputs, stage, sweep_dir.parent / "cache")
    return TrialContext(transfer=transfer, task=task, train_cache=cache.get("train"), ood_cache=cache.get("ood"),
                        shared_cache=str(sweep_dir.parent / "cache"),
                        eval_caches={s: str(stage.splits[s].path) for s in task.eval_splits},
                        teacher_path=inputs.teacher.path, teacher_config=inputs.teacher.config,
                        teacher_params=stage.teacher.params, pad_id=stage.pad_id,
                        max_length=space.data.max_length, resources=space.resources,
                        train_storage=str(sweep_dir / "train_runs"), seed=space.seed, loopback=loopback,
                        transfer_stage=None if loopback else space.stages.transfer_sets)


def transfer_source(space: SweepConfig, inputs, stage, cache: Path):
    """The training split (and OOD corpus) as text files in the cache, for augmentation and generators."""
    from raykd.teachers.cache import frame_fingerprint, teacher_fingerprint
    from raykd.transfer.store import TransferSource

    if "train" not in inputs.frames:
        return None
    paths = {}
    for name in ("train", "ood"):
        if name in inputs.frames:
            frame = inputs.frames[name]
            fingerprint = frame_fingerprint(frame)
            path = cache / "texts" / f"{fingerprint[:24]}.jsonl"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                frame.to_json(tmp, orient="records", lines=True)
                os.replace(tmp, path)
            paths[name] = (str(path), fingerprint)
    return TransferSource(train_text=paths["train"][0], data_fingerprint=paths["train"][1],
                          teacher_path=inputs.teacher.path, teacher_fingerprint=teacher_fingerprint(inputs.teacher.path),
                          max_length=space.data.max_length, cache_dir=str(cache), seed=space.seed,
                          num_labels=inputs.task.num_labels, ood_text=paths.get("ood", (None,))[0])


def low_data_summary(space: SweepConfig, inputs, echo: Callable[[str], Any]) -> dict:
    """Say and return the low-data sample (``data.train_size``): its size and labels; {} without one."""
    size = space.data.train_size
    if size is None or "train" not in inputs.frames:
        return {}
    frame = inputs.frames["train"]
    per_label = "" if inputs.task.is_regression else "; per label " + ", ".join(
        f"{label}: {count}" for label, count in sorted(frame["label"].value_counts().items()))
    what = f"{size} per class" if isinstance(size, int) else f"{size:g} of the training set"
    echo(f"low-data training set: {len(frame):,} examples ({what}, seed {space.seed}{per_label})")
    return {"train_size": size, "train_examples": len(frame)}
