"""Wall time of N trials that share one generated transfer set against N trials that each build it.

Each "trial" is what a raykd trial does with a with-data method: ask for its transfer set
(:func:`raykd.transfer.sets.build_transfer_sets`: train the generator, sample, teacher-label, or
read the cached set) and distil a BiLSTM student on the training split plus that set for one epoch.
Trials run ``--concurrent`` at a time in separate processes, one torch thread each, as a sweep runs
them. Both variants run in this one process tree on the same data:

- baseline, each builds: every trial has its own cache folder, so each builds the set itself;
- shared: all trials use one cache folder and the same settings, so the first builds and the rest
  wait for it under the file lock, then read it.

Run: ``python benchmarks/transfer_cache.py [--trials 4] [--concurrent 2] [--train-size 0.01]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _trial(cache_dir: str, source_kwargs: dict, request: tuple, train_cache: str, seed: int) -> tuple[float, bool]:
    """One trial: get the transfer set, then one epoch of KD into a BiLSTM; returns (seconds, built)."""
    import torch

    from raykd._quiet import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(1)
    from raykd.data.encoding import EncodedSplit
    from raykd.distill.loop import LoopSettings, fit
    from raykd.methods.vanilla import VanillaKD
    from raykd.students import StudentContext, build_student
    from raykd.transfer.sets import build_transfer_sets
    from raykd.transfer.store import TransferSource

    started = time.perf_counter()
    source = TransferSource(**{**source_kwargs, "cache_dir": cache_dir})
    with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):  # the generator's progress bar
        sets = build_transfer_sets([request], source)
    train = EncodedSplit.concat([EncodedSplit.load(train_cache), sets[0].load()])
    ctx = StudentContext(num_labels=2, is_pair=False, vocab_size=30522, pad_token_id=0, max_length=64,
                         teacher_path=source.teacher_path, teacher_config={})
    torch.manual_seed(seed)
    student = build_student("bilstm", {"embedding_dim": 64, "hidden_dim": 64, "mlp_dim": 64,
                                       "embedding_init": "random"}, ctx)
    objective = VanillaKD(kd_loss="kl", temperature=2.0, alpha=0.0).objective
    fit(student, objective, train, LoopSettings(epochs=1, batch_size=64, lr=2e-3, seed=seed),
        evaluate=lambda model: {"accuracy": 0.0}, primary="accuracy", report=lambda metrics, state: None,
        pad_id=0)
    return time.perf_counter() - started, sets[0].built


def _prepare(tmp: Path, train_size: float, seed: int) -> dict:
    """The low-data SST-2 split as text and as a teacher-labelled cache file (the sweep's stage)."""
    from raykd.config import DataConfig
    from raykd.data.sources import load_split
    from raykd.data.tasks import get_task
    from raykd.teachers.cache import cached_teacher_outputs, frame_fingerprint, teacher_fingerprint

    teacher = str(SHARED / "models" / "minilm-sst2")
    frame = load_split(DataConfig(glue_dir=str(SHARED / "data" / "glue"), train_size=train_size),
                       get_task("sst2"), "train", seed)
    frame.to_json(tmp / "train.jsonl", orient="records", lines=True)
    split = cached_teacher_outputs(teacher, {"train": frame}, max_length=64, cache_dir=tmp / "stage")["train"]
    return {"train_text": str(tmp / "train.jsonl"), "data_fingerprint": frame_fingerprint(frame),
            "teacher_path": teacher, "teacher_fingerprint": teacher_fingerprint(teacher), "max_length": 64,
            "seed": seed, "num_labels": 2, "train_cache": str(split.path)}


def _run(variant: str, trials: int, concurrent: int, tmp: Path, source: dict, request: tuple) -> tuple[float, list]:
    import multiprocessing

    started = time.perf_counter()
    kwargs = {k: v for k, v in source.items() if k != "train_cache"}
    caches = [str(tmp / variant / (f"trial{i}" if variant == "each" else "shared")) for i in range(trials)]
    with ProcessPoolExecutor(concurrent, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_trial, caches, [kwargs] * trials, [request] * trials,
                                [source["train_cache"]] * trials, range(trials)))
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--train-size", type=float, default=0.01, help="fraction of SST-2's training set")
    parser.add_argument("--multiple", type=float, default=5.0, help="generated examples per training example")
    parser.add_argument("--gen-epochs", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    request = ("generation", {"generator": {"path": "scratch", "layers": 2, "dim": 128, "heads": 2,
                                            "epochs": args.gen_epochs, "lr": 1e-3, "batch_size": 32,
                                            "max_tokens": 64},
                              "sampling": {"top_k": 0, "top_p": 1.0, "temperature": 1.0, "prompt": "first_token",
                                           "dedup": True},
                              "multiple": args.multiple, "pretrain_ood": False})
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        source = _prepare(tmp, args.train_size, seed=0)
        rows = [(name, *_run(variant, args.trials, args.concurrent, tmp, source, request))
                for name, variant in (("baseline: each trial builds its set", "each"),
                                      ("raykd: trials share one cached set", "shared"))]
    print(f"{args.trials} trials, {args.concurrent} at a time, 1 thread each; SST-2 train_size {args.train_size}, "
          f"generated set {args.multiple:g}x, generator 2x128 trained {args.gen_epochs} epochs")
    print(f"{'variant':<40}{'wall s':>8}{'builds':>8}{'ratio':>8}")
    for name, seconds, results in rows:
        print(f"{name:<40}{seconds:>8.1f}{sum(b for _, b in results):>8}{seconds / rows[0][1]:>8.2f}")
    print("ratio = wall time / baseline (lower is faster)")


if __name__ == "__main__":
    main()
