"""How much does running a student's training as a raykd trial cost, against bare PyTorch?

Trains the same BiLSTM student on the same SST-2 slice with the same soft targets, in one run,
on the same number of threads:

1. baseline: raykd's training loop (``raykd.distill.loop.fit``: plain PyTorch, with per-epoch dev
   evaluation) in this bare Python process, no Ray;
2. the same loop as a real raykd trial: a one-trial sweep through Ray Tune -> TorchTrainer
   (1 worker) -> the loop, with safetensors checkpoints, Tune reporting and MLflow tracking;
3. for reference, a naive hand-written PyTorch loop (shuffled DataLoader + pad_sequence, default
   AdamW), which shows what the loop's length bucketing and fused AdamW are worth.

It prints training throughput (examples/s inside the loop, startup excluded) and wall time per
variant, as ratios to the baseline. Usage::

    python benchmarks/trial_overhead.py [--examples 20000] [--epochs 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
STUDENT = {"embedding_dim": 64, "hidden_dim": 64, "embedding_init": "random"}
LR, BATCH = 2e-3, 64


def _space(examples: int, epochs: int, threads: int) -> dict:
    return {
        "name": "bench-overhead", "task": "sst2",
        "data": {"glue_dir": str(SHARED / "data/glue"), "max_length": 64, "train_limit": examples},
        "teacher": {"path": str(SHARED / "models/minilm-sst2")},
        "methods": {"vanilla": {"kd_loss": "mse", "alpha": 0.0}},
        "students": {"bilstm": STUDENT},
        "training": {"lr": LR, "epochs": epochs, "batch_size": BATCH, "warmup_ratio": 0.0, "weight_decay": 0.0,
                     "grad_clip": 0.0},
        "budget": {"num_samples": 1, "max_concurrent": 1},
        "resources": {"num_workers": 1, "cpus_per_worker": threads},
    }


def _student(ctx):
    import torch

    from raykd.students import build_student

    torch.manual_seed(0)
    return build_student("bilstm", STUDENT, ctx)


def naive_pytorch(split, ctx, epochs: int) -> tuple[float, float]:
    """The reference: a hand-written loop. Returns (train examples/s, wall seconds)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    started = time.perf_counter()
    model = _student(ctx)
    examples = [torch.from_numpy(split.input_ids[a:b].astype("int64")) for a, b in zip(split.offsets[:-1], split.offsets[1:])]
    targets = torch.from_numpy(split.teacher_logits)

    def collate(index):
        ids = pad_sequence([examples[i] for i in index], batch_first=True, padding_value=ctx.pad_token_id)
        return ids, (ids != ctx.pad_token_id).long(), targets[index]

    loader = torch.utils.data.DataLoader(range(len(examples)), batch_size=BATCH, shuffle=True, collate_fn=collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    train_seconds = 0.0
    for _ in range(epochs):
        tick = time.perf_counter()
        for ids, mask, teacher in loader:
            loss = torch.nn.functional.mse_loss(model(ids, mask, torch.zeros_like(ids)), teacher)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_seconds += time.perf_counter() - tick
    return epochs * len(examples) / train_seconds, time.perf_counter() - started


def raykd_loop(split, dev, task, ctx, epochs: int) -> tuple[float, float]:
    """raykd's loop in this process, with per-epoch dev evaluation. Returns (examples/s, wall s)."""
    from raykd.distill.evaluate import evaluate_splits
    from raykd.distill.loop import LoopSettings, fit
    from raykd.methods.vanilla import VanillaKD

    started = time.perf_counter()
    model, speeds = _student(ctx), []
    fit(model, VanillaKD("mse", 1.0, 0.0).objective, split,
        LoopSettings(epochs=epochs, batch_size=BATCH, lr=LR, weight_decay=0.0, warmup_ratio=0.0, grad_clip=0.0),
        evaluate=lambda m: evaluate_splits(m, {"dev": dev}, task, ctx.pad_token_id), primary="accuracy",
        report=lambda metrics, state: speeds.append(metrics["examples_per_s"]), pad_id=ctx.pad_token_id)
    return sum(speeds) / len(speeds), time.perf_counter() - started


def raykd_trial(space_raw: dict, storage: str, threads: int) -> tuple[float, float, float]:
    """A one-trial sweep. Returns (loop examples/s, trial wall s from Tune, whole sweep wall s incl. Ray start)."""
    import ray

    from raykd.config import parse_space
    from raykd.sweep.run import SweepOptions, run_sweep

    started = time.perf_counter()
    outcome = run_sweep(parse_space(space_raw), SweepOptions(storage=storage, num_cpus=threads, echo=lambda _: None))
    sweep_wall = time.perf_counter() - started
    ray.shutdown()
    (record,) = outcome.records
    results = [json.loads(line) for line in
               (outcome.sweep_dir / "tune" / f"trial-{record.trial_id}" / "result.json").read_text().splitlines()]
    speeds = [r["examples_per_s"] for r in results if "epoch" in r and not r.get("final")]
    return sum(speeds) / len(speeds), results[-1]["time_total_s"], sweep_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20000, help="SST-2 training examples (seeded sample)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads = CPUs of the trial's worker")
    args = parser.parse_args()

    import torch

    from raykd._quiet import quiet_libraries
    from raykd.checks import check_inputs
    from raykd.config import parse_space
    from raykd.students import StudentContext
    from raykd.sweep.stage import build_stage

    quiet_libraries()
    torch.set_num_threads(args.threads)
    raw = _space(args.examples, args.epochs, args.threads)
    with tempfile.TemporaryDirectory() as storage:
        space = parse_space(raw)
        inputs = check_inputs(space)
        stage = build_stage(space, inputs, Path(storage) / "cache", progress=False)  # shared with the trial
        split, dev = stage.splits["train"].load(), stage.splits["dev"].load()
        ctx = StudentContext(num_labels=2, is_pair=False, vocab_size=inputs.teacher.config["vocab_size"],
                             pad_token_id=stage.pad_id, max_length=64)
        naive_speed, naive_wall = naive_pytorch(split, ctx, args.epochs)
        loop_speed, loop_wall = raykd_loop(split, dev, inputs.task, ctx, args.epochs)
        trial_speed, trial_wall, sweep_wall = raykd_trial(raw, storage, args.threads)

    print(f"\nSST-2, {args.examples} examples x {args.epochs} epochs, BiLSTM {STUDENT}, batch {BATCH}, "
          f"{args.threads} thread(s), torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'variant':46s} {'train ex/s':>11s} {'ratio':>7s} {'wall s':>8s} {'ratio':>7s}")
    rows = [("baseline: raykd loop, bare process (no Ray)", loop_speed, loop_wall),
            ("raykd trial: Tune -> Ray Train worker -> loop", trial_speed, trial_wall),
            ("reference: naive hand-written PyTorch loop", naive_speed, naive_wall)]
    for name, speed, wall in rows:
        print(f"{name:46s} {speed:11.0f} {speed / loop_speed:7.2f} {wall:8.1f} {wall / loop_wall:7.2f}")
    print(f"{'whole 1-trial sweep (Ray start, teacher stage, MLflow)':46s} {'':11s} {'':7s} {sweep_wall:8.1f} "
          f"{sweep_wall / loop_wall:7.2f}")
    print(f"fixed cost of running as a trial: {trial_wall - loop_wall:.1f} s per trial "
          "(Train worker group start, checkpoints, reporting)")
    print("ratio = variant / baseline (throughput: higher is faster; wall: lower is faster)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
