"""The GPU check: raykd's CUDA code paths on a real GPU, with throughputs and peak GPU memory.

Nothing of raykd's GPU line runs on a CPU-only machine, so this script is what a session with a GPU
runs first. It exercises, on CUDA with bf16 autocast, the code the stages and trials run:

1. teacher stage: :func:`raykd.teachers.finetune.fine_tune` of the all-MiniLM-L6-v2 base on an
   SST-2 slice (the teacher fine-tuning Ray task's body), with its per-epoch checkpoint;
2. soft targets: a :class:`raykd.teachers.batch_inference.TeacherReplica` (the Ray Data actor's
   body) labelling the training slice, checked against the CPU's fp32 logits (argmax agreement);
3. trials: the distillation loop (:func:`raykd.distill.loop.fit`, bf16) of a BiLSTM and a
   2-layer transformer student, one at a time, and then two student processes sharing the GPU at
   once (what ``gpus_per_worker: 0.5`` does: two trials per GPU);
4. when Ray, Optuna and MLflow are importable there: a tiny sweep with ``gpus_per_worker: 0.5``,
   the teacher stage and Ray Data soft targets on the GPU (skipped, and said so, where they are not;
   the lent GPU machines have no package index, and Ray's wheel is larger than what travels).

Each step prints examples per second and peak GPU memory (``torch.cuda.max_memory_allocated`` of
its process); the CPU figures of the same code on a few batches are the baseline of the same run.
A JSON of every figure goes to ``$OUT/gpu_check.json`` when ``OUT`` is set.

The device machine gets only the repository, so prepare the inputs here first (the base's weights
in fp16, 45 MB, the tokenizer and an SST-2 slice), into an ignored folder that travels with
``carry``::

    python benchmarks/gpu_check.py --prepare .gpu_check          # here (needs ../shared)
    PYTHONPATH=. python3 benchmarks/gpu_check.py --data .gpu_check   # on the GPU machine

``--device cpu`` runs every step on the CPU with tiny sizes (a check of the script itself).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def prepare(folder: Path, train_rows: int) -> None:
    """Copy the base encoder (weights as fp16), its tokenizer and an SST-2 slice into ``folder``."""
    import pandas as pd
    import torch
    from safetensors.torch import load_file, save_file

    base = SHARED / "models" / "all-MiniLM-L6-v2"
    out = folder / "base"
    out.mkdir(parents=True, exist_ok=True)
    for item in base.iterdir():
        if item.is_file() and item.suffix != ".safetensors" and item.stat().st_size < 5_000_000:
            shutil.copy(item, out / item.name)
    weights = load_file(str(base / "model.safetensors"))
    save_file({k: v.to(torch.float16) if v.is_floating_point() else v for k, v in weights.items()},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    glue = folder / "glue" / "SST-2"
    glue.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(SHARED / "data" / "glue" / "SST-2" / "train.tsv", sep="\t", quoting=3)
    train.iloc[:train_rows].to_csv(glue / "train.tsv", sep="\t", index=False)
    shutil.copy(SHARED / "data" / "glue" / "SST-2" / "dev.tsv", glue / "dev.tsv")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    print(f"prepared {folder} ({size / 1e6:.1f} MB): base in fp16, {min(train_rows, len(train)):,} SST-2 training rows")


def _peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib(device: str) -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")


def _frames(data: Path, rows: int, dev_rows: int):
    from raykd.data.readers import read_glue
    from raykd.data.tasks import get_task

    task = get_task("sst2")
    return task, {"train": read_glue(data / "glue", task, "train").iloc[:rows].reset_index(drop=True),
                  "dev": read_glue(data / "glue", task, "dev").iloc[:dev_rows].reset_index(drop=True)}


def teacher_stage(data: Path, work: Path, device: str, rows: int, figures: dict) -> Path:
    from raykd.teachers.finetune import FineTuneSettings, fine_tune

    task, frames = _frames(data, rows, 872)
    settings = FineTuneSettings(epochs=1, lr=5e-5, batch_size=32, max_length=64)
    _peak_reset(device)
    started = time.perf_counter()
    metrics = fine_tune(task, str(data / "base"), work / "teacher", frames, settings, device=device,
                        resume_dir=work / "teacher.partial")
    seconds = time.perf_counter() - started
    figures["teacher_fine_tune"] = {"device": device, "rows": rows, "seconds": round(seconds, 2),
                                    "examples_per_s": round(rows / seconds, 1), "dev_accuracy": metrics["accuracy"],
                                    "peak_gib": round(_peak_gib(device), 3)}
    print(f"teacher fine-tuning ({device}, bf16 autocast on CUDA): {rows:,} examples in {seconds:.1f} s = "
          f"{rows / seconds:,.0f} examples/s incl. dev evaluation; dev accuracy {metrics['accuracy']:.4f}; "
          f"peak {_peak_gib(device):.2f} GiB")
    return work / "teacher"


def soft_targets(data: Path, teacher: Path, work: Path, device: str, rows: int, figures: dict):
    import numpy as np
    import torch

    from raykd.data.encoding import EncodedSplit
    from raykd.teachers.batch_inference import TeacherReplica
    from raykd.teachers.cache import teacher_logits
    from raykd.teachers.load import load_teacher, load_tokenizer

    _, frames = _frames(data, rows, 1)
    batch = frames["train"].assign(row=np.arange(len(frames["train"])))
    out = work / "soft"
    out.mkdir(exist_ok=True)
    _peak_reset(device)
    replica = TeacherReplica(str(teacher), 64, 512, str(out), threads=4)
    assert replica.device == device, f"replica chose {replica.device}, expected {device}"
    replica(batch.iloc[:512])  # warm-up (CUDA context, kernels)
    started = time.perf_counter()
    parts = replica(batch)
    seconds = time.perf_counter() - started
    split = EncodedSplit.load(out / parts["file"][0])
    # the CPU's fp32 logits on a sample: bf16 must keep the teacher's decisions
    sample = np.arange(0, len(split), max(1, len(split) // 512))[:512]
    from raykd.data.shards import INDEX_FILE  # noqa: F401  (the replica's parts are shard-folder parts)

    tokenizer, cpu_model = load_tokenizer(str(teacher)), load_teacher(str(teacher), "cpu")
    sub = EncodedSplit(**{k: v for k, v in _subset(split, sample).items()})
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    reference = teacher_logits(cpu_model, sub, tokenizer.pad_token_id, 64, "cpu")
    agree = float((reference.argmax(1) == sub.teacher_logits.argmax(1)).mean())
    diff = float(np.abs(reference - sub.teacher_logits).max())
    figures["soft_targets"] = {"device": device, "rows": len(split), "seconds": round(seconds, 2),
                               "examples_per_s": round(len(split) / seconds, 1), "argmax_agreement_vs_cpu_fp32": agree,
                               "max_abs_logit_diff": diff, "peak_gib": round(_peak_gib(device), 3)}
    print(f"soft targets (one TeacherReplica, batch 512): {len(split):,} examples in {seconds:.2f} s = "
          f"{len(split) / seconds:,.0f} examples/s incl. tokenisation; argmax agrees with CPU fp32 on "
          f"{agree:.1%} of {len(sample)} (max |logit diff| {diff:.3f}); peak {_peak_gib(device):.2f} GiB")
    return split


def _subset(split, index):
    import numpy as np

    lengths = split.lengths[index]
    flat = np.concatenate([np.arange(split.offsets[i], split.offsets[i + 1]) for i in index])
    return {"input_ids": split.input_ids[flat], "token_type_ids": split.token_type_ids[flat],
            "offsets": np.concatenate([[0], np.cumsum(lengths)]), "labels": split.labels[index],
            "teacher_logits": split.teacher_logits[index]}


STUDENTS = {"bilstm": {"embedding_dim": 300, "hidden_dim": 300, "num_layers": 1, "pooling": "attention",
                       "embedding_init": "random"},
            "transformer": {"num_layers": 2, "hidden_size": 256, "num_heads": 4, "ffn_dim": 1024, "init": "random"}}


def student_run(family: str, split_path: str, teacher: str, device: str, epochs: int) -> dict:
    """One trial's distillation loop (vanilla KD, bf16 on CUDA) on the labelled split; its figures."""
    import torch

    from raykd.data.encoding import EncodedSplit
    from raykd.distill.loop import LoopSettings, fit
    from raykd.methods.vanilla import VanillaKD
    from raykd.students import StudentContext, build_student
    from raykd.teachers.load import load_tokenizer

    split = EncodedSplit.load(split_path)
    tokenizer = load_tokenizer(teacher)
    ctx = StudentContext(num_labels=2, is_pair=False, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                         max_length=64, teacher_path=teacher)
    torch.manual_seed(0)
    params = dict(STUDENTS[family])
    init = params.pop("init", None)
    student = build_student(family, params, ctx, init_from_teacher=init != "random").to(device)
    settings = LoopSettings(epochs=epochs, batch_size=64, lr=1e-3, device=device,
                            amp="bf16" if device.startswith("cuda") else None)
    _peak_reset(device)
    started = time.perf_counter()
    history = []
    fit(student, VanillaKD(kd_loss="kl", temperature=2.0, alpha=0.0).objective, split, settings,
        evaluate=lambda m: {"accuracy": 0.0}, primary="accuracy", report=lambda metrics, state: history.append(metrics),
        pad_id=tokenizer.pad_token_id)
    seconds = time.perf_counter() - started
    return {"family": family, "device": device, "examples": len(split) * epochs, "seconds": round(seconds, 2),
            "examples_per_s": round(len(split) * epochs / seconds, 1), "final_loss": history[-1]["train_loss"],
            "peak_gib": round(_peak_gib(device), 3)}


def trials(split, teacher: Path, work: Path, device: str, epochs: int, figures: dict) -> None:
    path = work / "labelled.npz"
    split.save(path)
    figures["trials"] = {}
    for family in STUDENTS:
        result = student_run(family, str(path), str(teacher), device, epochs)
        figures["trials"][family] = result
        print(f"trial loop, {family} student ({device}, bf16 on CUDA): {result['examples_per_s']:,.0f} examples/s, "
              f"final KD loss {result['final_loss']:.4f}, peak {result['peak_gib']:.2f} GiB")
    # two trials on one GPU at once (gpus_per_worker: 0.5): two processes, each its own CUDA context
    code = ("import json, sys; sys.path.insert(0, %r); from benchmarks.gpu_check import student_run; "
            "print(json.dumps(student_run('bilstm', %r, %r, %r, %d)))") % (str(REPO), str(path), str(teacher), device,
                                                                          epochs)
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "4"}) for _ in range(2)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = time.perf_counter() - started
    together = sum(o["examples"] for o in outs) / wall
    alone = figures["trials"]["bilstm"]["examples_per_s"]
    figures["trials"]["two_bilstm_at_once"] = {"examples_per_s_total": round(together, 1), "vs_one": round(together / alone, 2),
                                               "peak_gib_each": [o["peak_gib"] for o in outs]}
    print(f"two bilstm trials sharing the GPU: {together:,.0f} examples/s together = {together / alone:.2f}x one alone "
          f"(wall {wall:.1f} s incl. start-up); peak {', '.join(str(o['peak_gib']) for o in outs)} GiB each")


def tiny_sweep(data: Path, work: Path, device: str, rows: int, figures: dict) -> None:
    try:
        import mlflow  # noqa: F401
        import optuna  # noqa: F401
        import ray  # noqa: F401
    except ImportError as missing:
        figures["sweep"] = {"skipped": f"{missing.name} is not installed here"}
        print(f"tiny sweep: skipped ({missing.name} is not installed on this machine; steps 1-3 ran the same code "
              "outside Ray)")
        return
    from raykd.config import parse_space
    from raykd.sweep.run import SweepOptions, run_sweep

    gpus = 0.5 if device.startswith("cuda") else 0.0
    raw = {"name": "gpu-check", "task": "sst2",
           "data": {"glue_dir": str(data / "glue"), "max_length": 64, "train_limit": rows, "dev_limit": 872},
           "teacher": {"base": str(data / "base"), "fine_tune": True, "fine_tune_epochs": 1, "allow_weak": True},
           "methods": {"vanilla": {"kd_loss": "kl", "temperature": [1.0, 4.0]}},
           "students": {"bilstm": {"embedding_dim": 128, "hidden_dim": [128, 256], "embedding_init": "random"}},
           "training": {"lr": 1.0e-3, "epochs": 1, "batch_size": 64}, "budget": {"num_samples": 4, "max_concurrent": 2},
           "resources": {"num_workers": 1, "cpus_per_worker": 2, "gpus_per_worker": gpus}, "seed": 0}
    started = time.perf_counter()
    outcome = run_sweep(parse_space(raw), SweepOptions(storage=str(work / "runs"), num_cpus=8, live=False))
    seconds = time.perf_counter() - started
    done = [r for r in outcome.records if r.status == "TERMINATED"]
    figures["sweep"] = {"seconds": round(seconds, 1), "trials_finished": len(done), "trials": len(outcome.records)}
    print(f"tiny sweep (gpus_per_worker {gpus}): {len(done)} of {len(outcome.records)} trials finished in {seconds:.0f} s")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", type=Path, help="write the inputs into this folder and stop (run here)")
    parser.add_argument("--data", type=Path, default=REPO / ".gpu_check", help="the prepared folder")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a tiny check of the script)")
    parser.add_argument("--rows", type=int, default=20_000, help="SST-2 training rows to fine-tune on and label")
    parser.add_argument("--epochs", type=int, default=2, help="student epochs per trial loop")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.prepare, args.rows)
        return
    import torch

    from raykd._quiet import quiet_libraries

    quiet_libraries()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu_check: torch sees no CUDA GPU here; run it on the GPU machine, or pass --device cpu")
    rows = args.rows if args.device.startswith("cuda") else min(args.rows, 256)
    figures = {"torch": torch.__version__, "device": args.device,
               "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None}
    print(f"raykd GPU check on {figures['gpu'] or 'CPU'} (torch {torch.__version__})")
    work = Path(tempfile.mkdtemp(prefix="raykd-gpu-check-"))
    teacher = teacher_stage(args.data, work, args.device, rows, figures)
    split = soft_targets(args.data, teacher, work, args.device, rows, figures)
    trials(split, teacher, work, args.device, args.epochs if args.device.startswith("cuda") else 1, figures)
    tiny_sweep(args.data, work, args.device, min(rows, 4000), figures)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
