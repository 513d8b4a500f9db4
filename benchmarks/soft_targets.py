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
teacher) is inside the measured time, as in a sweep.

Run: ``python benchmarks/soft_targets.py [--rows 6000] [--max-length 64]``.
"""

from __future__ import annotations

import argparse
import logging
import os
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
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import pandas as pd
    import torch

    from raykd._quiet import quiet_libraries
    from raykd.sweep.local_ray import start_local_ray
    from raykd.stages import StagePlan
    from raykd.teachers.batch_inference import ray_soft_targets
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
    rates = {}
    for replicas in (1, 2):
        plan = StagePlan(gpus=0.0, cpus=1.0, replicas=replicas, batch_size=args.batch_size)
        compute = ray_soft_targets(plan, echo=lambda line: None, chunk_rows=512)
        cpu, started = time.process_time(), time.perf_counter()
        cached_teacher_outputs(str(TEACHER), {"train": frame}, cache_dir=tempfile.mkdtemp(), compute=compute, **kwargs)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        rates[replicas] = len(frame) / wall
        print(f"{f'Ray Data, {replicas} replica(s) x 1 CPU':<38} {rates[replicas]:>11.1f} {rates[replicas] / baseline:>11.2f}x "
              f"{cpu:>13.2f} {wall:>8.1f}")
    print(f"2 replicas vs 1: {rates[2] / rates[1]:.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
