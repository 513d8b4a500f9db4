"""Soft targets as Ray Data batch inference: teacher replicas on the cluster's nodes, never in the driver.

:func:`ray_soft_targets` returns the ``compute`` hook of
:func:`raykd.teachers.cache.cached_teacher_outputs`. For each split still missing from the cache it
builds a Ray Dataset of the split's rows (text and label, with their row number), and
``map_batches`` hands chunks of rows to a fixed pool of :class:`TeacherReplica` actors (one per GPU
the ``stages.soft_targets`` plan asks for, or CPU actors with the threads their CPUs allow). Each
replica tokenises its chunk with the teacher's tokenizer, runs the teacher over it (length-sorted
batches, CUDA with bf16 autocast where torch sees a GPU) and writes the chunk as one part of a shard
folder (:mod:`raykd.data.shards`) straight to the cache, so the driver only ships the text once and
gathers file names: its CPU time during the stage is near zero, and no process ever holds more than
a chunk of tokens and logits.

The cache folder must be visible to every node (one machine, NFS or a shared volume); object
storage (``s3://``) is not supported here yet.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from raykd.data.shards import INDEX_FILE

if TYPE_CHECKING:
    import pandas as pd

    from raykd.stages import StagePlan

__all__ = ["TeacherReplica", "ray_soft_targets", "CHUNK_ROWS"]

CHUNK_ROWS = 4096
"""Rows per replica call and per shard part: small enough to share work out evenly and keep each
replica's memory to a few MB, large enough that a call's overhead (milliseconds) does not count."""

PROGRESS_EVERY_S = 60.0
"""Seconds between the stage's progress lines."""



def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TeacherReplica:
    """One teacher replica of the batch inference (a Ray Data actor).

    Args:
        teacher_path: teacher folder or hub id.
        max_length: truncation length in tokens.
        batch_size: examples per teacher forward pass.
        out_dir: the shard folder the parts go to (shared storage).
        threads: torch threads (the actor's CPUs, at most its node's cores).

    A call takes a pandas batch with ``row``, ``text_a``, optional ``text_b`` and ``label`` columns
    (normally consecutive rows) and returns one row per part written: ``file``, ``first``, ``rows``,
    ``node``, ``device``, ``seconds``.
    """

    def __init__(self, teacher_path: str, max_length: int, batch_size: int, out_dir: str, threads: int):
        import torch

        from raykd._quiet import quiet_libraries
        from raykd.teachers.load import load_teacher, load_tokenizer

        quiet_libraries()
        torch.set_num_threads(max(1, min(int(threads), os.cpu_count() or 1)))
        self.device = _device()
        self.tokenizer = load_tokenizer(teacher_path)
        self.model = load_teacher(teacher_path, self.device)
        self.max_length, self.batch_size, self.out_dir = max_length, batch_size, Path(out_dir)

    def __call__(self, batch: "pd.DataFrame") -> "pd.DataFrame":
        import pandas as pd

        from raykd.data.encoding import encode_frame
        from raykd.teachers.cache import teacher_logits

        started = time.perf_counter()
        order = np.argsort(batch["row"].to_numpy(), kind="stable")
        batch = batch.iloc[order].reset_index(drop=True)
        rows = batch["row"].to_numpy()
        # a batch is normally one run of consecutive rows; should Ray Data join blocks that are not
        # neighbours, each run becomes its own part
        cuts = np.flatnonzero(np.diff(rows) != 1) + 1
        split = encode_frame(self.tokenizer, batch.drop(columns="row"), self.max_length)
        split.teacher_logits = teacher_logits(self.model, split, self.tokenizer.pad_token_id, self.batch_size,
                                              self.device)
        out = {"file": [], "first": [], "rows": []}
        for lo, hi in zip([0, *cuts], [*cuts, len(rows)]):
            part = split if (lo, hi) == (0, len(rows)) else _rows(split, lo, hi)
            name = f"part-{int(rows[lo]):010d}.npz"
            tmp = self.out_dir / f".{name}.tmp{os.getpid()}.npz"
            part.save(tmp)
            os.replace(tmp, self.out_dir / name)
            out["file"].append(name)
            out["first"].append(int(rows[lo]))
            out["rows"].append(hi - lo)
        n = len(out["file"])
        return pd.DataFrame({**out, "node": [_node_id()] * n, "device": [self.device] * n,
                             "seconds": [time.perf_counter() - started] + [0.0] * (n - 1)})


def _node_id() -> str | None:
    """The Ray node this runs on; None outside Ray (a replica called directly, as the GPU check does)."""
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except ImportError:
        return None


def _gather(parts, name: str, total: int, echo) -> "pd.DataFrame":
    """Stream the replicas' part records (a few bytes each) to the driver, with a progress line a minute."""

    import pandas as pd

    started = last = time.perf_counter()
    records, done = [], 0
    for batch in parts.iter_batches(batch_size=None, batch_format="pandas"):
        records.append(batch)
        done += int(batch["rows"].sum())
        if time.perf_counter() - last >= PROGRESS_EVERY_S:
            last = time.perf_counter()
            echo(f"teacher soft targets: {name}: {done:,} of {total:,} examples "
                 f"({(last - started) / 60:.0f} min)")
    frame = pd.concat(records, ignore_index=True) if records else pd.DataFrame(columns=["file", "first", "rows"])
    return frame.sort_values("first").reset_index(drop=True)


def _rows(split, lo: int, hi: int):
    """Examples ``lo:hi`` of a split, offsets from 0."""
    from raykd.data.encoding import EncodedSplit

    a, b = int(split.offsets[lo]), int(split.offsets[hi])
    return EncodedSplit(input_ids=split.input_ids[a:b], token_type_ids=split.token_type_ids[a:b],
                        offsets=split.offsets[lo:hi + 1] - a, labels=split.labels[lo:hi],
                        teacher_logits=split.teacher_logits[lo:hi])


def ray_soft_targets(plan: "StagePlan | Callable[[], StagePlan]", *, start_ray: Callable[[], None] | None = None,
                     echo: Callable[[str], object] = print, chunk_rows: int = CHUNK_ROWS):
    """The ``compute`` hook that labels a split with a pool of teacher replicas (see the module docstring).

    Args:
        plan: ``stages.soft_targets`` resolved (:func:`raykd.stages.resolve_stages`): replicas,
            GPUs, CPUs and memory per replica, forward batch size; or a function that resolves it
            once Ray is up (the defaults depend on the cluster).
        start_ray: called before the first split is computed (Ray is started only when needed).
        echo: one line per split.
        chunk_rows: rows per replica call and per shard part.

    Returns:
        ``compute(name, frame, teacher_path, max_length, folder) -> dict`` that writes the split as a
        shard folder at ``folder`` and returns what ran where (``rows``, ``replicas``, ``nodes``,
        ``devices``, ``seconds``).
    """

    def compute(name: str, frame: "pd.DataFrame", teacher_path: str, max_length: int, folder: Path) -> dict:
        import json
        import logging

        import ray

        if start_ray is not None:
            start_ray()
        stage = plan() if callable(plan) else plan
        # raykd prints its own line a minute; Ray Data's bars and notices flood a sweep's log
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ray.data.DataContext.get_current().enable_progress_bars = False
        started = time.perf_counter()
        folder.mkdir(parents=True, exist_ok=True)
        columns = [c for c in ("text_a", "text_b", "label") if c in frame]
        table = frame[columns].reset_index(drop=True).assign(row=np.arange(len(frame)))
        blocks = max(1, -(-len(table) // chunk_rows))
        # one block per chunk, cut here: no repartition task, so a replica may take every CPU of its
        # node without starving an upstream step of Ray Data (a local instance has one node)
        dataset = ray.data.from_pandas([table.iloc[i:i + chunk_rows] for i in range(0, len(table), chunk_rows)])
        replicas = max(1, min(stage.replicas, blocks))
        cpus = stage.cpus if stage.cpus is not None else 1.0
        options = stage.ray_options(cpus)
        echo(f"teacher soft targets: {name}: {len(table):,} examples on {replicas} teacher replica(s) of "
             f"{stage.describe()} (Ray Data, {blocks} part(s))")
        parts = _gather(dataset.map_batches(
            TeacherReplica, batch_size=chunk_rows, batch_format="pandas",
            fn_constructor_kwargs={"teacher_path": teacher_path, "max_length": max_length,
                                   "batch_size": stage.batch_size, "out_dir": str(folder), "threads": int(max(1, cpus))},
            compute=ray.data.ActorPoolStrategy(size=replicas), num_cpus=options["num_cpus"],
            num_gpus=options["num_gpus"] or None, memory=options.get("memory"), resources=options.get("resources"),
        ), name, len(table), echo)
        expected = np.concatenate([[0], np.cumsum(parts["rows"].to_numpy())[:-1]])
        if parts["rows"].sum() != len(table) or not np.array_equal(parts["first"].to_numpy(), expected):
            raise RuntimeError(f"soft targets for {name}: the replicas' parts cover {int(parts['rows'].sum())} of "
                               f"{len(table)} rows out of order")
        shards = [{"file": f, "rows": int(r)} for f, r in zip(parts["file"], parts["rows"])]
        (folder / INDEX_FILE).write_text(json.dumps({"rows": len(table), "shards": shards}, indent=1))
        return {"rows": len(table), "replicas": replicas, "nodes": sorted(set(parts["node"])),
                "devices": sorted(set(parts["device"])), "seconds": round(time.perf_counter() - started, 2),
                "replica_seconds": round(float(parts["seconds"].sum()), 2)}

    return compute
