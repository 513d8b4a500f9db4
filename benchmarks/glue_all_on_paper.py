"""raykd's own cost estimate of ``search_spaces/glue_all.yaml`` on a stated GPU cluster, worked out on paper here.

The cluster is not here, so nothing runs on it: this script builds the inputs the estimator reads and
applies raykd's real estimator (:func:`raykd.sweep.workload.plan_work`,
:func:`~raykd.sweep.workload.calibration_jobs`, :func:`raykd.sweep.calibrate.calibrate`,
:func:`raykd.sweep.estimate.predict`) to them, then prints a markdown table per stage and what dominates.

* **Data at full GLUE scale**: a temporary ``glue_data`` folder with all nine tasks at their official
  train/dev sizes (:data:`GLUE_ROWS`). CoLA, SST-2, MRPC, STS-B and RTE are the local files (they are
  the official splits). QQP is resampled (seeded, with replacement) from MRPC's pairs, MNLI and WNLI
  from RTE's pairs, QNLI from the local QNLI dev pairs (real QNLI text; there is no local QNLI train),
  with valid labels (MRPC's for QQP, cycled for MNLI's three classes and WNLI). So those four tasks'
  token lengths are borrowed: RTE and MRPC pairs are longer than MNLI's and QQP's, so their token
  counts, and the time they cost, err high.
* **Teacher**: glue_all fine-tunes ``bert-base-uncased``, which is not on this machine; cost does not
  depend on the weights, so a randomly initialised BERT-base encoder (``BertConfig()`` defaults: 12
  layers, 768 hidden, vocab 30,522; no classification head, like the real checkpoint) is saved with
  all-MiniLM-L6-v2's tokenizer (the bert-base-uncased vocabulary) and ``teacher.base`` points at it. ``methods.generation.generator`` is ``scratch``
  (glue_all's gpt2 is not available offline). Every other glue_all setting is kept.
* **Stated cluster** (``--gpu-nodes N``, default 8): a head with CPU 0 (m6i.2xlarge) plus N GPU
  nodes shaped like ``cluster/aws.yaml``'s ``gpu_worker`` (g5.2xlarge: 1 A10G 24 GB, 8 vCPU,
  32 GiB), as ``ray.nodes()`` would list them; Ray is taken as attached (no Ray start counted).
* **Measurements**: the calibration jobs raykd makes for that cluster run here, in this process, on
  this machine's CPUs (:func:`~raykd.sweep.calibrate.calibrate`, not at Ray's worker niceness: that is
  about this machine's Ray workers, not the stated cluster's). Every batch it times is cut to about
  ``--calibration-tokens`` padded tokens, so the CPU calibration of a bert-base fits a minute or two.
  There is no GPU here, so the GPU figures come from a stated factor, ``--gpu-speedup X``, applied
  by :func:`on_gpu` to every workload that runs on a GPU in the stated cluster (teacher forward and
  fine-tuning, students and their evaluation, generator training and sampling): a batch costs the
  CPU seconds per token of the batches timed here divided by X, and at least a stated GPU per-batch
  floor (:data:`GPU_FLOOR_S`). The CPU seconds per token are taken whole (``per_call / tokens +
  per_unit`` at the timed size) because two small timed batches of similar length do not separate
  the per-batch from the per-token part reliably (the split moved 4x between two runs here), while
  their sum is what was measured; it also carries the CPU's per-batch work (the optimiser step) as
  per-token work, which errs high. The generators' per-build parts stay as measured; tokenisation,
  Tang's rules, loading and building (CPU work) stay as measured.

The default factor is tied to numbers measured in the same run: this machine's fp32 matmul rate
(torch, 2048 x 2048, the calibration's threads), measured before the first job and after each, and
each job scaled by the mean of the two around it (a shared machine's speed drifts). The A10G's dense
bf16/fp16 tensor-core peak is about 70 TFLOP/s (AWS's A10G variant; the A10 is 125), and a BERT-base
in eager PyTorch with bf16 autocast at batch 32 and 128 tokens reaches about 30% of it (~21 TFLOP/s,
about 250 fine-tuning sequences/s); so the default is ``70e12 * 0.30 / (measured matmul FLOP/s)``.
The CPU's own per-token costs are below its matmul peak too, so this is if anything conservative
for the big matmul workloads (teacher, transformer students) and optimistic for the small,
latency-bound ones (BiLSTM students, sampling), where the per-batch floor matters more. The table
is printed at the default factor, with the stage totals at factor / 3 and x 3.

    python benchmarks/glue_all_on_paper.py [--gpu-nodes 8] [--gpu-speedup X] [--calibration-tokens 256]

About 4 minutes on the project's 2-core machine when idle (2.5 of them the CPU calibration: its trial job
times 8 student architectures, a few CPU optimiser steps each).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GLUE = SHARED / "data" / "glue"
TOKENIZER = SHARED / "models" / "all-MiniLM-L6-v2"
SPACE = REPO / "search_spaces" / "glue_all.yaml"

GLUE_ROWS = {"cola": {"train": 8_551, "dev": 1_043}, "sst2": {"train": 67_349, "dev": 872},
             "mrpc": {"train": 3_668, "dev": 408}, "stsb": {"train": 5_749, "dev": 1_500},
             "qqp": {"train": 363_846, "dev": 40_430},
             "mnli": {"train": 392_702, "dev_matched": 9_815, "dev_mismatched": 9_832},
             "qnli": {"train": 104_743, "dev": 5_463}, "rte": {"train": 2_490, "dev": 277},
             "wnli": {"train": 635, "dev": 71}}
"""Official GLUE train/dev rows of every task (MNLI: dev matched and mismatched)."""

_LOCAL = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE"}
"""Tasks whose local files are the official splits (copied as they are)."""

# borrowed tasks: (glue_data folder, header, where the pairs come from, label values or None: the source's label)
_BORROWED = {
    "qqp": ("QQP", ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"], "mrpc", None),
    "mnli": ("MNLI", ["index", "promptID", "pairID", "genre", "sentence1", "sentence2", "gold_label"], "rte",
             ["entailment", "neutral", "contradiction"]),
    "qnli": ("QNLI", ["index", "question", "sentence", "label"], "qnli", None),
    "wnli": ("WNLI", ["index", "sentence1", "sentence2", "label"], "rte", ["0", "1"]),
}
_POOLS = {"mrpc": (["MRPC/train.tsv", "MRPC/dev.tsv"], "#1 String", "#2 String", "Quality"),
          "rte": (["RTE/train.tsv", "RTE/dev.tsv"], "sentence1", "sentence2", "label"),
          "qnli": (["QNLI/dev.tsv"], "question", "sentence", "label")}

NODE_MEMORY_GIB = 32.0
"""g5.2xlarge memory; Ray gives 30% of what is free at start to the object store and the rest to ``memory``."""
RAY_MEMORY_FRACTION = 0.7 * (NODE_MEMORY_GIB - 1.5) / NODE_MEMORY_GIB
"""Share of the node's memory Ray advertises as ``memory`` (about 1.5 GiB in use at start, 30% object store)."""
GIB = 1 << 30

A10G_PEAK_FLOPS = 70e12
"""A10G dense bf16/fp16 tensor-core peak (the A10's is 125 TFLOP/s; AWS's A10G variant is lower)."""
A10G_UTILISATION = 0.30
"""Share of that peak eager PyTorch BERT-base fine-tuning reaches with bf16 autocast (batch 32, 128 tokens)."""

GPU_FLOOR_S = {"teacher_forward": 0.003, "teacher_train": 0.015, "students": 0.005}
"""Stated GPU seconds per batch at least: kernel launches of a 12-layer forward (3 ms); forward, backward
and the fused AdamW step over 110M parameters (15 ms); a small student's step (5 ms)."""


def _read_tsv(path: Path):
    import pandas as pd

    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False,
                       encoding="utf-8-sig")


def _clean(text: str) -> str:
    return " ".join(str(text).replace("\t", " ").split())


def write_glue_dir(root: Path, seed: int = 0) -> dict[str, str]:
    """Write the nine GLUE tasks at their official sizes into ``root`` (glue_data layout).

    Returns:
        task -> where its text comes from, in words.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    where = {}
    for task, folder in _LOCAL.items():
        (root / folder).mkdir(parents=True)
        for split in GLUE_ROWS[task]:
            shutil.copyfile(GLUE / folder / f"{split}.tsv", root / folder / f"{split}.tsv")
        where[task] = "local files (official)"
    pools = {}
    for name, (files, a, b, label) in _POOLS.items():
        frames = [_read_tsv(GLUE / f) for f in files]
        pools[name] = [(_clean(x), _clean(y), str(z).strip()) for f in frames for x, y, z in zip(f[a], f[b], f[label])]
    for task, (folder, header, source, labels) in _BORROWED.items():
        (root / folder).mkdir(parents=True)
        pool = pools[source]
        for split, rows in GLUE_ROWS[task].items():
            picks = rng.integers(len(pool), size=rows)
            with open(root / folder / f"{split}.tsv", "w", encoding="utf-8") as out:
                out.write("\t".join(header) + "\n")
                for i, k in enumerate(picks):
                    a, b, label = pool[k]
                    label = labels[i % len(labels)] if labels else label
                    fields = {"qqp": [str(i), str(2 * i), str(2 * i + 1), a, b, label],
                              "mnli": [str(i), str(i), f"{i}e", "fiction", a, b, label]}.get(task, [str(i), a, b, label])
                    out.write("\t".join(fields) + "\n")
        where[task] = {"mrpc": "MRPC's pairs", "rte": "RTE's pairs", "qnli": "QNLI's local dev pairs"}[source]
    return where


def make_teacher(folder: Path) -> Path:
    """A randomly initialised BERT-base encoder (``BertConfig()`` defaults) with the bert-base-uncased tokenizer.

    Saved as a :class:`~transformers.BertModel` (encoder and pooler, no classification head), as the real
    ``bert-base-uncased`` checkpoint has none: the teacher stage and its calibration load it with a new head of
    each task's size, which a saved 2-label head would refuse for MNLI's 3 labels and STS-B's 1.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(folder)
    AutoTokenizer.from_pretrained(TOKENIZER).save_pretrained(folder)
    return folder


def stated_cluster(gpu_nodes: int) -> tuple[dict[str, float], list[dict[str, float]]]:
    """``(cluster resources, nodes)`` as ``ray.cluster_resources()`` and :func:`raykd.stages.cluster_nodes`
    would give them: a CPU-0 head and ``gpu_nodes`` g5.2xlarge workers (cluster/aws.yaml's gpu_worker)."""
    memory = RAY_MEMORY_FRACTION * NODE_MEMORY_GIB * GIB
    store = 0.3 * (NODE_MEMORY_GIB - 1.5) * GIB
    head = {"CPU": 0.0, "memory": memory, "object_store_memory": store, "node:__internal_head__": 1.0,
            "node:10.0.0.1": 1.0}
    workers = [{"CPU": 8.0, "GPU": 1.0, "memory": memory, "object_store_memory": store, "raykd_gpu": 100.0,
                "accelerator_type:A10G": 1.0, f"node:10.0.1.{i + 1}": 1.0} for i in range(gpu_nodes)]
    nodes = [head, *workers]
    cluster: dict[str, float] = {}
    for node in nodes:
        for key, value in node.items():
            cluster[key] = cluster.get(key, 0.0) + value
    return cluster, nodes


def matmul_gflops(threads: int, seconds: float = 1.5, n: int = 2048) -> float:
    """This machine's fp32 matmul rate (GFLOP/s) with ``threads`` torch threads."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            a @ b
            done += 1
        return 2 * n ** 3 * done / (time.perf_counter() - started) / 1e9
    finally:
        torch.set_num_threads(previous)


def on_gpu(m, speedup: float, timed: dict | None = None):
    """``m`` as the stated GPU would measure it; returns a new Measurements.

    The GPU workloads' costs are divided by ``speedup``: a workload timed here at ``timed[name]`` padded tokens
    per batch (``teacher_forward``, ``teacher_train``; ``students``: family -> tokens) becomes
    ``Cost(floor, (per_call / tokens + per_unit) / speedup)``: the CPU seconds per token of the timed batches, whatever
    the fit made of them, and the GPU per-batch floor (:data:`GPU_FLOOR_S`); one not in ``timed`` becomes
    ``Cost(max(per_call / speedup, floor), per_unit / speedup)`` (no floor: per_call as measured: the generator's
    per-build part). Student evaluation and generator training and sampling are divided per unit; CPU work
    (tokenisation, Tang, loading, building, the CPU latency measurement) is unchanged.
    """
    from raykd.sweep.calibrate import Cost

    timed = timed or {}

    def gpu(cost, floor=None, tokens=None):
        if cost is None:
            return None
        if tokens:
            return Cost(floor or 0.0, (cost.per_call / tokens + cost.per_unit) / speedup)
        per_call = cost.per_call if floor is None else max(cost.per_call / speedup, floor)
        return Cost(per_call, cost.per_unit / speedup)

    students = timed.get("students", {})
    return replace(m, device="cuda (stated)",
                   teacher_forward=gpu(m.teacher_forward, GPU_FLOOR_S["teacher_forward"], timed.get("teacher_forward")),
                   teacher_train=gpu(m.teacher_train, GPU_FLOOR_S["teacher_train"], timed.get("teacher_train")),
                   students={f: gpu(c, GPU_FLOOR_S["students"], students.get(f)) for f, c in m.students.items()},
                   student_eval={f: gpu(c) for f, c in m.student_eval.items()},
                   generator_train=gpu(m.generator_train), generator_sample=gpu(m.generator_sample))


def stated_measurements(measured: dict, jobs: dict, speedup: dict[str, float], timed: dict | None = None) -> dict:
    """Stage -> its Measurements on the stated cluster: :func:`on_gpu` (at ``speedup[stage]``, with ``timed[stage]``)
    for the stages whose job runs on a GPU there, the others as measured."""
    timed = timed or {}
    return {stage: on_gpu(m, speedup[stage], timed.get(stage)) if jobs[stage].gpu else m
            for stage, m in measured.items()}


def capped_jobs(jobs: dict, work, tokens: int) -> dict:
    """The calibration jobs with every timed batch cut to about ``tokens`` padded tokens (at least 2 examples)
    of the task each job times (a CPU-sized calibration; the per-token cost is what carries to the GPU)."""
    lengths = {id(t.sample): float(t.lengths.mean()) for t in work.tasks}
    out = {}
    for stage, job in jobs.items():
        most = max(2, int(tokens // lengths.get(id(job.frame), 32.0)))

        def cap(n: int, most=most) -> int:
            return min(n, most) if n else n

        out[stage] = replace(job, teacher_forward=cap(job.teacher_forward), teacher_train=cap(job.teacher_train),
                             student_batch={f: cap(b) for f, b in job.student_batch.items()})
    return out


def timed_tokens(job, work) -> dict:
    """Mean padded tokens of the batches :func:`~raykd.sweep.calibrate.calibrate` times for ``job`` (its windows at
    the 25% and 75% length quantiles of the job's sample): ``teacher_forward``, ``teacher_train``, ``students``."""
    from raykd.sweep.calibrate import spread_windows

    lengths = next(t.lengths for t in work.tasks if t.sample is job.frame)

    def tokens(batch: int) -> float | None:
        if not batch:
            return None
        windows = spread_windows(lengths, batch, (0.25, 0.75))
        return float(sum(len(w) * int(lengths[w].max()) for w in windows) / len(windows))

    return {"teacher_forward": tokens(job.teacher_forward), "teacher_train": tokens(job.teacher_train),
            "students": {f: tokens(b) for f, b in job.student_batch.items()}}


def per_example_ms(cost, work, batch: int, train: bool) -> float:
    """Milliseconds per training example of all tasks, batched as the teacher stage (``train``) or the
    soft-target stage cuts them."""
    from raykd.sweep.workload import loop_batches, sorted_batches

    cut = loop_batches if train else sorted_batches
    seconds = sum(cost.seconds(*cut(t.lengths, t.train_rows, batch)) for t in work.tasks)
    return 1e3 * seconds / max(1, sum(t.train_rows for t in work.tasks))


def only(work, stage: str):
    """``work`` with nothing to do but ``stage`` (the others' inputs emptied), so :func:`~raykd.sweep.estimate.predict`
    on it costs that stage alone (the trial and transfer-set arithmetic over millions of rows is not free)."""
    tasks = work.tasks if stage == "teacher" else tuple(replace(t, fine_tune="no", to_label={}) for t in work.tasks)
    if stage == "teacher":
        tasks = tuple(replace(t, to_label={}) for t in tasks)
    return replace(work, tasks=tasks, transfers=work.transfers if stage == "transfer_sets" else (),
                   trials=work.trials if stage == "trials" else replace(work.trials, trials=0))


def kind_seconds(work, measured: dict) -> list[tuple[str, float]]:
    """Each (method, family) kind's part of the trial stage, by :func:`~raykd.sweep.estimate.predict` on the
    work narrowed to that kind (share 1), times its share; largest first."""
    from raykd.sweep.estimate import predict

    trials, parts = only(work, "trials"), []
    for kind in work.trials.kinds:
        alone = replace(trials, trials=replace(trials.trials, kinds=(replace(kind, share=1.0),)))
        parts.append((f"{kind.method}/{kind.family}", kind.share * predict(alone, measured).by_stage()["trials"].seconds))
    return sorted(parts, key=lambda p: -p[1])


def teacher_seconds(work, measured: dict) -> list[tuple[str, float]]:
    """Each task's teacher fine-tuning alone (:func:`~raykd.sweep.estimate.predict` on that task), longest first."""
    from raykd.sweep.estimate import predict

    teacher = only(work, "teacher")
    out = [(t.name, predict(replace(teacher, tasks=(t,)), measured).by_stage()["teacher"].seconds)
           for t in teacher.tasks if t.fine_tune == "todo"]
    return sorted(out, key=lambda p: -p[1])


def transfer_seconds(work, measured: dict) -> list[tuple[str, float]]:
    """The transfer-set stage per (kind, task): :func:`~raykd.sweep.estimate.predict` on the work narrowed to
    that task's sets of that kind; largest first."""
    from raykd.sweep.estimate import predict

    sets, out = only(work, "transfer_sets"), []
    for key in dict.fromkeys((t.kind, t.task) for t in work.transfers if not t.cached):
        alone = replace(sets, transfers=tuple(t for t in work.transfers if (t.kind, t.task) == key))
        out.append((f"{key[0]} {key[1]}", predict(alone, measured).by_stage()["transfer_sets"].seconds))
    return sorted(out, key=lambda p: -p[1])


def markdown(estimate) -> list[str]:
    """The estimate as a markdown table ``| stage | estimate | detail |`` with a total row."""
    from raykd.sweep.estimate import STAGE_LABELS, format_duration

    lines = ["| stage | estimate | detail |", "|---|---|---|"]
    for s in estimate.stages:
        shown = format_duration(s.seconds) if s.status == "estimated" else f"0 s ({s.status})"
        lines.append(f"| {STAGE_LABELS[s.stage]} | {shown} | {s.detail.replace('|', '/')} |")
    lines.append(f"| **total** | **{format_duration(estimate.total)}** | |")
    return lines


@dataclass
class Run:
    """What :func:`measure` found: the sweep's work on the stated cluster and the calibration done here."""

    args: argparse.Namespace
    space: object
    num_samples: int
    overrides: dict
    sources: dict[str, str]
    notices: list[str]
    work: object
    jobs: dict
    timed: dict
    measured: dict
    gflops: list[float]
    threads: int
    prepared_s: float


def measure(args: argparse.Namespace) -> Run:
    """Write the full-size data and the random teacher, check the space (:func:`~raykd.sweep.preflight.preflight`),
    plan its work on the stated cluster (:func:`~raykd.sweep.workload.plan_work`) and run its calibration
    jobs here (:func:`~raykd.sweep.calibrate.calibrate`), with the matmul rate measured before and after each."""
    from raykd._quiet import quiet_libraries
    from raykd.config import load_space
    from raykd.sweep.calibrate import calibrate
    from raykd.sweep.preflight import SweepOptions, preflight
    from raykd.sweep.workload import calibration_jobs, plan_work

    started = time.perf_counter()
    quiet_libraries()
    notices: list[str] = []
    with tempfile.TemporaryDirectory(prefix="glue_all_on_paper_") as folder:
        tmp = Path(folder)
        sources = write_glue_dir(tmp / "glue_data")
        teacher = make_teacher(tmp / "bert-base-random")
        overrides = {"data.glue_dir": str(tmp / "glue_data"), "teacher.base": str(teacher),
                     "methods.generation.generator": "scratch"}
        space = load_space(SPACE, overrides)
        # address: the stated cluster (the local-resource checks are skipped, nothing connects); fine-tuned
        # teachers are not cached in this fresh storage, so preflight measures no teacher on dev
        options = SweepOptions(storage=str(tmp / "storage"), address="stated-cluster", echo=notices.append)
        pre = preflight(space, options)
        cluster, nodes = stated_cluster(args.gpu_nodes)
        work = plan_work(pre, cluster, nodes, done_trials=0, on_ray=True)
        jobs = calibration_jobs(pre, work)
        prepared = time.perf_counter() - started
        threads = max(max(1, min(int(job.threads), os.cpu_count() or 1)) for job in jobs.values())
        timed = capped_jobs(jobs, work, args.calibration_tokens)
        rates, measured = [matmul_gflops(threads)], {}
        for stage, job in timed.items():  # the machine's speed right before and after each job
            measured[stage] = calibrate(job)
            rates.append(matmul_gflops(threads))
    return Run(args=args, space=space, num_samples=pre.num_samples, overrides=overrides, sources=sources,
               notices=notices, work=work, jobs=jobs, timed=timed, measured=measured, gflops=rates, threads=threads,
               prepared_s=prepared)


def report(run: Run) -> None:
    """Print the header, the stage table at the default factor, the sensitivity table and what dominates."""
    from raykd.sweep.estimate import STAGE_LABELS, format_duration, predict

    args, work, jobs, measured, space = run.args, run.work, run.jobs, run.measured, run.space
    rates = run.gflops  # before the first job, then after each
    around = {stage: (rates[i] + rates[i + 1]) / 2 for i, stage in enumerate(run.timed)}
    speedup = {stage: args.gpu_speedup or A10G_PEAK_FLOPS * A10G_UTILISATION / (rate * 1e9)
               for stage, rate in around.items()}
    timed = {stage: timed_tokens(job, work) for stage, job in run.timed.items()}

    def at(scale: float) -> dict:
        return stated_measurements(measured, jobs, {k: v * scale for k, v in speedup.items()}, timed)

    stated = at(1.0)
    estimate = predict(work, stated)
    spread = {scale: predict(work, at(scale)) for scale in (1 / 3, 3.0)}
    ram = RAY_MEMORY_FRACTION * NODE_MEMORY_GIB

    shown = {"data.glue_dir": "<full-size glue_data>", "teacher.base": "<random bert-base>"}
    print(f"# glue_all on paper: {args.gpu_nodes} x g5.2xlarge\n")
    print(f"- space: {SPACE.relative_to(REPO)} with --set "
          + ", ".join(f"{k}={shown.get(k, v)}" for k, v in run.overrides.items())
          + f"; every other setting as written (epochs, batch sizes, num_samples {run.num_samples}, stages:, "
          f"gpus_per_worker {space.resources.gpus_per_worker:g})")
    print(f"- stated cluster: head m6i.2xlarge with CPU 0 + {args.gpu_nodes} GPU nodes (g5.2xlarge: 1 A10G 24 GB, "
          f"8 vCPU, 32 GiB; Ray memory {ram:.1f} GiB each); Ray attached, no start counted; the estimator plans "
          f"{work.fine_tune.slots} teachers at once, {work.soft.replicas} soft-target replicas, "
          f"{work.trials.concurrency} trials at once")
    print("- teacher: bert-base-uncased shape (12 layers, 768 hidden, vocab 30,522, 110M parameters), random weights "
          "(cost does not depend on them); generation's generator: scratch (gpt2 is not available offline)")
    rows = ", ".join(f"{t.name} {t.train_rows:,}/" + "/".join(f"{len(x):,}" for x in t.eval_lengths) for t in work.tasks)
    print(f"- data, train/dev rows as read: {rows}")
    print("- text: " + "; ".join(f"{task}: {src}" for task, src in run.sources.items())
          + ". The lengths of qqp, mnli, qnli and wnli are borrowed; mean tokens per training example: "
          + ", ".join(f"{t.name} {t.lengths.mean():.0f}" for t in work.tasks))
    names = {id(t.sample): t.name for t in work.tasks}
    shown_jobs = ", ".join(f"{stage} on {names.get(id(job.frame), '?')} at batch "
                           f"{job.teacher_forward or job.teacher_train or max(job.student_batch.values(), default=0)}"
                           for stage, job in run.timed.items())
    print(f"- measured here: {os.cpu_count()} CPU cores, {run.threads} torch thread(s); fp32 matmul GFLOP/s before the "
          f"first job and after each: {' / '.join(f'{r:.1f}' for r in rates)} (load average {os.getloadavg()[0]:.1f}); "
          f"calibration {sum(m.seconds for m in measured.values()):.0f} s, each stage's job timed on the task with the "
          f"most tokens of its work (calibration_jobs), batches cut to about {args.calibration_tokens} tokens: "
          f"{shown_jobs}")
    origin = ("given" if args.gpu_speedup else f"A10G {A10G_PEAK_FLOPS / 1e12:.0f} TFLOP/s x {A10G_UTILISATION:.0%} / "
              "the matmul rate around each job")
    print("- GPU speedup " + ", ".join(f"{stage} **{x:,.0f}x**" for stage, x in speedup.items() if jobs[stage].gpu)
          + f" ({origin}) on the CPU seconds per token of the timed batches (per example for generators) of every "
          "workload that runs on a GPU there (trials too: two per A10G at gpus_per_worker 0.5, each at the full "
          f"factor, as small students leave the GPU mostly idle); GPU per-batch floors: teacher forward "
          f"{GPU_FLOOR_S['teacher_forward'] * 1e3:g} ms, teacher step {GPU_FLOOR_S['teacher_train'] * 1e3:g} ms, "
          f"student step {GPU_FLOOR_S['students'] * 1e3:g} ms")
    ft, soft = work.fine_tune.batch_size, work.soft.batch_size
    print(f"- teacher per training example (all tasks): fine-tuning at batch {ft} "
          f"{per_example_ms(measured['teacher'].teacher_train, work, ft, True):.2f} ms here, "
          f"{per_example_ms(stated['teacher'].teacher_train, work, ft, True):.3f} ms assumed on the A10G; forward at "
          f"batch {soft} {per_example_ms(measured['soft_targets'].teacher_forward, work, soft, False):.2f} ms here, "
          f"{per_example_ms(stated['soft_targets'].teacher_forward, work, soft, False):.4f} ms on the A10G")
    for line in run.notices:
        print(f"- preflight: {line}")
    print()
    print("\n".join(markdown(estimate)))
    print(f"\nraykd's own print of it (SweepEstimate.describe(), calibrated here):\n```\n{estimate.describe()}\n```\n")
    row = (spread[1 / 3], estimate, spread[3.0])
    print("| sensitivity | speedup / 3 | speedup as above | speedup x 3 |")
    print("|---|---|---|---|")
    for s in estimate.stages:
        print(f"| {STAGE_LABELS[s.stage]} | " + " | ".join(format_duration(e.by_stage()[s.stage].seconds) for e in row)
              + " |")
    print("| total | " + " | ".join(format_duration(e.total) for e in row) + " |")
    print()
    top = max(estimate.stages, key=lambda s: s.seconds)
    trials = estimate.by_stage()["trials"].seconds
    print(f"**What dominates**: the {STAGE_LABELS[top.stage]} stage, {format_duration(top.seconds)} of "
          f"{format_duration(estimate.total)} ({top.seconds / max(estimate.total, 1e-9):.0%}).")
    print("- trials by (method, family), share x time: " + "; ".join(
        f"{name} {format_duration(s)} ({s / max(trials, 1e-9):.0%})" for name, s in kind_seconds(work, stated)))
    print("- teacher stage, each task's fine-tuning alone: " + ", ".join(
        f"{name} {format_duration(s)}" for name, s in teacher_seconds(work, stated))
        + f" ({work.fine_tune.slots} at once: the stage is the longest one or the sum over the slots, the larger)")
    sets = transfer_seconds(work, stated)
    total = estimate.by_stage()["transfer_sets"].seconds
    print("- transfer sets by (kind, task), largest first: " + "; ".join(
        f"{name} {format_duration(s)} ({s / max(total, 1e-9):.0%})" for name, s in sets[:6])
        + (f"; {len(sets) - 6} more {format_duration(sum(s for _, s in sets[6:]))}" if len(sets) > 6 else ""))
    tang = measured.get("transfer_sets") and measured["transfer_sets"].tang
    if tang is not None and tang.per_unit == 0:
        print(f"- caveat: Tang's rules came out at {tang.per_call:.1f} s per build and 0 per source example (raykd "
              "times 16 then 48 examples with no warm-up, so the first call carries the tagger's lazy load and the "
              "fit's slope is negative); their per-example part is missing from the transfer-set figure")
    from raykd.stages import resolve_stages, unfit_units

    cluster, nodes = stated_cluster(args.gpu_nodes)
    for line in unfit_units(resolve_stages(space, cluster, nodes), nodes):  # what raykd validate --estimate warns
        print(f"- warning: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-nodes", type=int, default=8, help="g5.2xlarge workers beside the CPU-0 head")
    parser.add_argument("--gpu-speedup", type=float, default=None,
                        help="GPU / this machine per-token speed (default: A10G 70 TFLOP/s x 30%% / measured matmul rate)")
    parser.add_argument("--calibration-tokens", type=int, default=256, help="padded tokens per timed batch, about")
    args = parser.parse_args()
    started = time.perf_counter()
    run = measure(args)
    report(run)
    print(f"\n(prepared in {run.prepared_s:.0f} s; whole run {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
