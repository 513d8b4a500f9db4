"""Soft-target throughput of Ray Data batch inference with 1 and 2 teacher replicas, and the driver's CPU time.

The soft-target stage of a sweep labels every split with teacher replicas (Ray Data actors, see
:mod:`raykd.teachers.batch_inference`), never in the driver. This script labels the same SST-2
slice three ways, in one run, with the real ``minilm-sst2`` teacher:

- baseline: the teacher in this process on one torch thread (what the stage did before, in the driver);
- Ray Data, 1 replica of 1 CPU (one thread);
- Ray Data, 2 replicas of 1 CPU each;

on a Ray instance started for it on 127.0.0.1 (raykd's loopback-only local instance, 2 logical
CPUs), each from an empty cache. It prints examples per second, the ratio to the baseline and of
2 replicas to 1, and the driver's CPU seconds during each Ray Data run (``time.process_time`` of
this process: planning, shipping the text, gathering file names). Replica start-up (loading the
teacher) is inside the measured time, as in a sweep; the last line also gives the ratio of the
replicas' busy time alone (their calls, start-up excluded), which is what more rows tend to.
``--repeats N`` runs each Ray Data variant N times in alternating order and prints medians (a
shared 2-core machine drifts by 10-20% between runs).

Run: ``python benchmarks/soft_targets.py [--rows 6000] [--max-length 64] [--repeats 1]``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TEACHER = SHARED / "models" / "minilm-sst2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=6000, help="SST-2 training sentences to label")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64, help="examples per teacher forward pass")
    parser.add_argument("--chunk-rows", type=int, default=512, help="rows per replica call")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each Ray Data variant (medians are printed)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import pandas as pd
    import torch

    from raykd._quiet import quiet_libraries
    from raykd.sweep.local_ray import start_local_ray
    from raykd.teachers.cache import cached_teacher_outputs

    quiet_libraries()
    frame = pd.read_csv(SHARED / "data" / "glue" / "SST-2" / "train.tsv", sep="\t", quoting=3)
    frame = frame.rename(columns={"sentence": "text_a"}).iloc[:args.rows].reset_index(drop=True)
    kwargs = {"max_length": args.max_length, "batch_size": args.batch_size}

    torch.set_num_threads(1)
    started = time.perf_counter()
    cached_teacher_outputs(str(TEACHER), {"train": frame}, cache_dir=tempfile.mkdtemp(), **kwargs)
    baseline = len(frame) / (time.perf_counter() - started)
    print(f"{len(frame):,} SST-2 sentences, max_length {args.max_length}, minilm-sst2 (22.7M), batch {args.batch_size}, "
          f"{os.cpu_count()} cores")
    print(f"{'variant':<38} {'examples/s':>11} {'vs baseline':>12} {'driver CPU s':>13} {'wall s':>8}")
    print(f"{'in-process teacher, 1 thread (baseline)':<38} {baseline:>11.1f} {1.0:>11.2f}x {'(all of it)':>13} "
          f"{len(frame) / baseline:>8.1f}")

    start_local_ray(2, logging_level=logging.WARNING, log_to_driver=False)
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for repeat in range(args.repeats):
        for replicas in ((1, 2) if repeat % 2 == 0 else (2, 1)):  # alternate the order: drift hits both alike
            runs[replicas].append(_ray_run(frame, replicas, kwargs, args.chunk_rows))
    rates = {}
    for replicas, done in runs.items():
        wall = statistics.median(r["wall"] for r in done)
        cpu = statistics.median(r["cpu"] for r in done)
        busy = statistics.median(r["replica_s"] / replicas for r in done)  # each replica's busy seconds
        rates[replicas] = (len(frame) / wall, len(frame) / busy)
        print(f"{f'Ray Data, {replicas} replica(s) x 1 CPU':<38} {rates[replicas][0]:>11.1f} "
              f"{rates[replicas][0] / baseline:>11.2f}x {cpu:>13.2f} {wall:>8.1f}")
    print(f"2 replicas vs 1, end to end (start-up included, median of {args.repeats}): "
          f"{rates[2][0] / rates[1][0]:.2f}x (target >= 1.7x on 2 cores); "
          f"replicas' busy time only: {rates[2][1] / rates[1][1]:.2f}x")
    print("each run (wall s): " + "; ".join(f"{k} replica(s): " + ", ".join(f"{r['wall']:.1f}" for r in v)
                                             for k, v in runs.items()))


def _ray_run(frame, replicas: int, kwargs: dict, chunk_rows: int) -> dict:
    """Label ``frame`` from an empty cache with ``replicas`` teacher replicas of 1 CPU: wall seconds, the
    driver's CPU seconds and the replicas' summed busy seconds (their calls, start-up excluded)."""
    from raykd.stages import StagePlan
    from raykd.teachers.batch_inference import ray_soft_targets
    from raykd.teachers.cache import cached_teacher_outputs

    plan = StagePlan(gpus=0.0, cpus=1.0, replicas=replicas, batch_size=kwargs["batch_size"])
    inner, stats = ray_soft_targets(plan, echo=lambda line: None, chunk_rows=chunk_rows), {}

    def compute(*args):
        stats.update(inner(*args))
        return stats

    cpu, started = time.process_time(), time.perf_counter()
    cached_teacher_outputs(str(TEACHER), {"train": frame}, cache_dir=tempfile.mkdtemp(), compute=compute, **kwargs)
    return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu,
            "replica_s": stats["replica_seconds"]}


if __name__ == "__main__":
    main()
