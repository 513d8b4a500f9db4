"""Teachers per task as a cached stage: fine-tune a base encoder once per (base, task, data, settings).

A space with ``teacher: {base: ..., fine_tune: true}`` gets one teacher per task that has no ready
teacher. Each is fine-tuned by :func:`raykd.teachers.finetune.fine_tune` (the code behind
``raykd teacher fine-tune``) inside a Ray task, before any trial starts; the tasks run side by side
as far as the cluster's CPUs allow. The result is a normal Hugging Face folder in
``<storage>/cache/teachers/<key>/`` whose key is a SHA-256 over the base encoder's weights, the
task, the training data's content, the tokens per example and the fine-tuning settings, so a later
sweep (or a resumed one) with the same inputs reuses it instead of fine-tuning again. A file lock
per key makes two sweeps that need the same teacher wait for one fine-tuning run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from raykd.data.tasks import TaskSpec
from raykd.teachers.finetune import FineTuneSettings

__all__ = ["FineTuneJob", "teacher_key", "fine_tuned_teachers", "fine_tune_into", "TEACHERS_DIR"]

PROGRESS_EVERY_S = 60.0
"""Seconds between the teacher stage's "still fine-tuning" lines."""

TEACHERS_DIR = "teachers"
"""Sub-folder of the shared cache that holds fine-tuned teachers."""


@dataclass(frozen=True)
class FineTuneJob:
    """One teacher to fine-tune.

    Attributes:
        task: the task (its labels become the head's ``id2label``).
        base: the pretrained encoder, a folder or hub id.
        frames: ``train`` and the task's eval splits (DataFrames with ``text_a``, ``text_b``, ``label``).
        settings: optimisation settings (``max_length`` is the sweep's ``data.max_length``).
    """

    task: TaskSpec
    base: str
    frames: dict[str, Any]
    settings: FineTuneSettings


def teacher_key(job: FineTuneJob) -> str:
    """The cache key of a fine-tuned teacher: SHA-256 (24 hex digits) over base weights, task, data, settings."""
    from raykd.teachers.cache import frame_fingerprint, teacher_fingerprint

    payload = {"v": 1, "base": teacher_fingerprint(job.base), "task": job.task.name,
               "labels": list(job.task.label_names or ()), "settings": asdict(job.settings),
               "data": {name: frame_fingerprint(frame) for name, frame in sorted(job.frames.items())}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def fine_tune_into(job: FineTuneJob, folder: str | Path, threads: int | None = None, *,
                   progress: Callable[[str, int], Callable[[int], None]] | None = None,
                   device: str | None = None) -> dict:
    """Fine-tune one teacher into its cache ``folder`` (written aside, then renamed) under the key's file lock.

    The teacher stage runs it as a Ray task; ``raykd teacher fine-tune --space`` calls it directly.
    After every epoch a checkpoint goes to ``<folder>.partial/``; a run that finds one (a Ray task
    restarted after its node was lost, or a rerun after a crash) continues from it.

    Args:
        job: what to fine-tune.
        folder: ``<cache>/teachers/<teacher_key(job)>``.
        threads: torch threads (None: leave torch's setting).
        progress: optional progress-bar factory.
        device: ``cpu`` or ``cuda``; None: CUDA when torch sees a GPU here (in a Ray task: the
            one Ray assigned; a node that advertises a GPU torch cannot use falls back to the CPU).

    Returns:
        ``{"cached": bool, **training_card.json}`` (``cached`` when another run had finished it),
        with ``device`` and ``node`` (the Ray node id, or None outside Ray) of the run.
    """
    import torch
    from filelock import FileLock

    from raykd._quiet import quiet_libraries
    from raykd.teachers.finetune import fine_tune

    quiet_libraries()
    if threads:
        torch.set_num_threads(max(1, min(threads, os.cpu_count() or threads)))
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "training_card.json").is_file():  # another sweep finished it while we waited
            return {"cached": True, **json.loads((target / "training_card.json").read_text())}
        tmp = target.with_name(f"{target.name}.tmp{os.getpid()}")
        partial = target.with_name(f"{target.name}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        started = time.perf_counter()
        fine_tune(job.task, job.base, tmp, job.frames, job.settings, progress=progress, device=device,
                  resume_dir=partial)
        card = json.loads((tmp / "training_card.json").read_text())
        card["fine_tune_seconds"] = round(time.perf_counter() - started, 1)
        card.update(device=device, node=_node_id())
        (tmp / "training_card.json").write_text(json.dumps(card, indent=1))
        os.replace(tmp, target)
        shutil.rmtree(partial, ignore_errors=True)
    return {"cached": False, **card}


def _node_id() -> str | None:
    """The Ray node this runs on, or None outside Ray."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - bookkeeping only
        return None


def fine_tuned_teachers(jobs: list[FineTuneJob], cache_dir: str | Path, *, cpus_per_job: float = 1.0,
                        echo: Callable[[str], Any] = print, plan=None) -> dict[str, dict]:
    """Fine-tune (or reuse) one teacher per job, the missing ones as Ray tasks running side by side.

    Ray must already be started (``ray.init``); nothing is submitted when every teacher is cached.

    Args:
        jobs: one per task.
        cache_dir: the shared cache root (``<storage>/cache``).
        cpus_per_job: the fewest CPUs each Ray task reserves. When the cluster has more free CPUs than
            the tasks would take, they share them out (fewer teachers than CPUs: each fine-tunes on
            several threads); the torch thread count is the task's CPUs, at most its node's cores.
        echo: where one line per teacher goes.
        plan: ``stages.teacher`` resolved (:class:`raykd.stages.StagePlan`): the GPUs, memory
            and custom resources each task asks for, and its CPUs (None: shared out as above).
            None: CPUs only.

    Returns:
        task name -> ``{"path": folder, "card": training_card.json contents, "cached": bool}``; the
        card holds ``dev_metrics``, ``train_rows`` and (when fine-tuned here) ``fine_tune_seconds``.

    Raises:
        ray.exceptions.RayTaskError: a fine-tuning run failed (the message names the task).
    """
    root = Path(cache_dir) / TEACHERS_DIR
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict] = {}
    pending = {}
    for job in jobs:
        folder = root / teacher_key(job)
        if (folder / "training_card.json").is_file():
            card = json.loads((folder / "training_card.json").read_text())
            out[job.task.name] = {"path": str(folder), "card": card, "cached": True}
            echo(f"teacher for {job.task.name}: cached fine-tuned {Path(job.base).name} ({_dev(card)}) in {folder}")
        else:
            pending[job.task.name] = (job, folder)
    if not pending:
        return out
    import ray

    from raykd.stages import cluster_nodes, teacher_task_cpus

    cpus_per_job = teacher_task_cpus(plan, free=ray.available_resources().get("CPU", cpus_per_job),
                                     pending=len(pending), floor=cpus_per_job, nodes=cluster_nodes())
    options = plan.ray_options(cpus_per_job) if plan is not None else {"num_cpus": cpus_per_job}
    # a task lost with its node (a preempted GPU node) is started again and continues from its last epoch
    remote = ray.remote(fine_tune_into).options(max_retries=2, **options)
    started = time.perf_counter()
    listed = ", ".join(f"{name} ({len(job.frames['train']):,} examples)" for name, (job, _) in pending.items())
    asks = plan.describe().replace("the free CPUs shared out", f"{cpus_per_job:g} CPU") if plan else f"{cpus_per_job:g} CPU"
    echo(f"fine-tuning {len(pending)} teacher(s) from {Path(jobs[0].base).name} as Ray tasks of {asks} "
         f"each: {listed}")
    refs = {remote.remote(job, str(folder), int(max(1, cpus_per_job))): name for name, (job, folder) in pending.items()}
    waiting = list(refs)
    while waiting:
        done, waiting = ray.wait(waiting, num_returns=1, timeout=PROGRESS_EVERY_S)
        if not done:  # a line a minute, so a long stage is visibly alive
            echo(f"still fine-tuning {', '.join(refs[r] for r in waiting)} "
                 f"({(time.perf_counter() - started) / 60:.0f} min into the teacher stage)")
            continue
        name = refs[done[0]]
        card = ray.get(done[0])
        cached = card.pop("cached")
        out[name] = {"path": str(pending[name][1]), "card": card, "cached": cached}
        took = f"{card['fine_tune_seconds'] / 60:.1f} min" if "fine_tune_seconds" in card and not cached else "cached"
        where = f" on {card['device']}" if not cached and card.get("device") else ""
        echo(f"teacher for {name}: fine-tuned in {took}{where} ({_dev(card)}); "
             f"{time.perf_counter() - started:.0f} s into the teacher stage")
    return out


def _dev(card: dict) -> str:
    metrics = card.get("dev_metrics", {})
    return ", ".join(f"dev {k} {v:.4f}" for k, v in metrics.items()) or "no dev metrics"
