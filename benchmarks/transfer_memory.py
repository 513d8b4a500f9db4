"""Peak memory of building a Tang transfer set: it grows with the shard size, not with the data.

A pair task of ``--rows`` examples is made from the local GLUE pair text (MRPC, RTE, QNLI and
STS-B, every split: their ~45,000 distinct sentences paired at random, seeded), and a Tang set is
built from it with :func:`raykd.transfer.store.ensure_transfer_set` in a fresh process per
configuration (peak RSS: the process's ``VmHWM``; see :func:`_peak_mb`):

- baseline, read only: import torch, read the source, then load the teacher and tokenizer (the
  order a build does it), nothing built: what every build holds; at both sizes;
- one shot: the steps of the store before shards, at ``--small`` rows only: the source read whole,
  the whole set augmented (today's :func:`~raykd.transfer.augment.tang_augment`, its chunks
  joined), tokenised in one call, labelled, and saved as one ``split.npz`` and ``texts.jsonl``;
- sharded: the builder yields :func:`raykd.transfer.augment.tang_chunks` chunks and the store
  tokenises, labels and writes ``shard_rows`` at a time: ``--small`` and ``--rows`` at one shard
  size, and ``--rows`` at a second shard size.

To fit a few minutes on two CPU cores, the teacher is a random-initialised 1-layer BERT (hidden 32,
2 labels; all-MiniLM-L6-v2's tokenizer saved alongside) and Tang runs ``--n-iter`` passes per pair
(the paper's is 10). Every process runs one torch thread and a single-threaded tokenizer, and
``--jobs`` configurations run at a time, paired as listed (so rows/s compares within a pair).
Peak RSS includes what glibc's allocator keeps after frees (its mmap threshold adapts upwards, so
a large shard also leaves a fragmented heap): it is what a user's process would show.

    python benchmarks/transfer_memory.py [--rows 400000] [--small 100000] [--shard-rows 10000 50000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
_PAIR_COLUMNS = {"MRPC": ("#1 String", "#2 String"), "RTE": ("sentence1", "sentence2"),
                 "QNLI": ("question", "sentence"), "STS-B": ("sentence1", "sentence2")}
_TEACHER = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _sentences() -> list[str]:
    """Every distinct sentence of the local GLUE pair tasks, whitespace-normalised, in a fixed order."""
    import pandas as pd

    seen: dict[str, None] = {}
    for task, columns in _PAIR_COLUMNS.items():
        for path in sorted((SHARED / "data" / "glue" / task).glob("*.tsv")):
            frame = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, encoding="utf-8-sig", dtype=str)
            for column in columns:
                seen.update(dict.fromkeys(" ".join(t.split()) for t in frame[column].dropna()))
    return [text for text in seen if text]


def _prepare(tmp: Path, rows: int, small: int, max_length: int) -> tuple[dict, int]:
    """The source files (``rows`` pairs and their first ``small``) and the random teacher.

    Returns:
        (source rows -> ``TransferSource`` fields but ``cache_dir``, distinct sentences in the pool).
    """
    import numpy as np
    import pandas as pd
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from raykd.teachers.cache import frame_fingerprint, teacher_fingerprint

    pool = np.array(_sentences(), dtype=object)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"text_a": pool[rng.integers(len(pool), size=rows)],
                          "text_b": pool[rng.integers(len(pool), size=rows)], "label": rng.integers(2, size=rows)})
    sources = {}
    for n in (small, rows):
        part = frame.head(n)
        part.to_json(tmp / f"train{n}.jsonl", orient="records", lines=True)
        sources[n] = {"train_text": str(tmp / f"train{n}.jsonl"), "data_fingerprint": frame_fingerprint(part)}
    tokenizer = AutoTokenizer.from_pretrained(SHARED / "models" / "all-MiniLM-L6-v2")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, num_labels=2, max_position_embeddings=max(512, max_length),
                        **_TEACHER)
    BertForSequenceClassification(config).save_pretrained(tmp / "teacher")
    tokenizer.save_pretrained(tmp / "teacher")
    common = {"teacher_path": str(tmp / "teacher"), "teacher_fingerprint": teacher_fingerprint(str(tmp / "teacher")),
              "max_length": max_length, "seed": 0, "num_labels": 2}
    return {n: {**common, **s} for n, s in sources.items()}, len(pool)


def _child(job: dict) -> dict:
    """One configuration in this (fresh) process; returns rows, seconds and peak RSS."""
    import torch

    from raykd._quiet import quiet_libraries
    from raykd.teachers.load import load_teacher, load_tokenizer
    from raykd.transfer.augment import TangSettings, tang_chunks
    from raykd.transfer.store import TransferSource, ensure_transfer_set

    quiet_libraries()
    torch.set_num_threads(1)
    source = TransferSource(**job["source"], cache_dir=job["cache_dir"])
    started = time.perf_counter()
    rates = TangSettings(n_iter=job["n_iter"])
    if job["mode"] == "read":
        train = source.read_train()
        load_tokenizer(source.teacher_path), load_teacher(source.teacher_path)
        rows, shards = len(train), 0
    elif job["mode"] == "oneshot":
        rows, shards = _one_shot(source, rates, Path(job["cache_dir"])), 1
    else:
        built = ensure_transfer_set("tang", {"n_iter": job["n_iter"]}, source,
                                    lambda train: (tang_chunks(train, rates, seed=0), {}), shard_rows=job["shard_rows"])
        rows, shards = built.meta["rows"], built.meta["shards"]
    seconds = time.perf_counter() - started
    return {"rows": rows, "shards": shards, "seconds": seconds, "peak_mb": _peak_mb()}


def _peak_mb() -> float:
    """Peak resident memory of this process since its ``exec``, MB.

    Linux carries the forking parent's peak over ``exec`` into ``ru_maxrss`` (a child of this
    benchmark, which holds the 400k-row source, would report at least the parent's peak), so the
    memory map's own high-water mark ``VmHWM`` is read instead; ``ru_maxrss`` where there is no /proc.
    """
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB; macOS: bytes


def _one_shot(source, rates, folder: Path) -> int:
    """The store's steps before shards (no lock or key): everything at once; returns the rows."""
    import pandas as pd

    from raykd.data.encoding import encode_frame
    from raykd.teachers.cache import teacher_logits
    from raykd.teachers.load import load_teacher, load_tokenizer
    from raykd.transfer.augment import tang_augment

    frame = tang_augment(pd.read_json(source.train_text, lines=True), rates, seed=0)
    tokenizer, teacher = load_tokenizer(source.teacher_path), load_teacher(source.teacher_path)
    split = encode_frame(tokenizer, frame.assign(label=-1), source.max_length)
    split.teacher_logits = teacher_logits(teacher, split, tokenizer.pad_token_id, 128)
    folder.mkdir(parents=True)
    split.save(folder / "split.npz")
    frame.to_json(folder / "texts.jsonl", orient="records", lines=True)
    return len(split)


def _run(job: dict) -> dict:
    """``job`` in a fresh interpreter (its own peak RSS); one JSON line comes back."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=400_000, help="source pairs of the large task")
    parser.add_argument("--small", type=int, default=100_000, help="source pairs of the small task")
    parser.add_argument("--shard-rows", type=int, nargs=2, default=[10_000, 50_000], metavar=("S1", "S2"))
    parser.add_argument("--n-iter", type=int, default=1, help="Tang passes per pair (the paper: 10)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--jobs", type=int, default=2, help="configurations run at a time (one thread each)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    from raykd._quiet import quiet_libraries

    quiet_libraries()
    small, large, (s1, s2) = args.small, args.rows, args.shard_rows
    # (variant, source rows, mode, shard rows), run --jobs at a time in this order
    plan = [("baseline: read source + teacher", small, "read", 0),
            ("baseline: read source + teacher", large, "read", 0),
            ("one shot (store before shards)", small, "oneshot", 10 ** 9),
            ("sharded", small, "chunks", s1), ("sharded", large, "chunks", s1), ("sharded", large, "chunks", s2)]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        sources, pool = _prepare(tmp, large, small, args.max_length)
        jobs = [{"mode": mode, "source": sources[n], "n_iter": args.n_iter, "shard_rows": shard,
                 "cache_dir": str(tmp / f"cache{i}")} for i, (_, n, mode, shard) in enumerate(plan)]
        with ThreadPoolExecutor(args.jobs) as executor:
            results = [(*row, done) for row, done in zip(plan, executor.map(_run, jobs))]
    print(f"Tang pair set from {pool} distinct GLUE sentences (MRPC, RTE, QNLI, STS-B) paired at random; "
          f"n_iter {args.n_iter} (reduced), max_length {args.max_length}; teacher: random-init BERT "
          f"{_TEACHER['num_hidden_layers']}x{_TEACHER['hidden_size']} (reduced), 2 labels; 1 thread per process, "
          f"{args.jobs} at a time; {os.cpu_count()} CPUs, 1-minute load average {load:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end")
    _print_table(results, large)


def _print_table(results: list[tuple], large: int) -> None:
    """One line per configuration; ``over read`` and ``ratio`` against the read-only baselines."""
    read = {n: r["peak_mb"] for _, n, mode, _, r in results if mode == "read"}
    print(f"{'variant':<34}{'source':>9}{'shard':>8}{'set rows':>10}{'shards':>8}{'s':>8}{'rows/s':>9}"
          f"{'peak MB':>9}{'over read':>10}{'ratio':>7}")
    for name, n, mode, shard, r in results:
        shard_text = "-" if mode == "read" else ("all" if mode == "oneshot" else str(shard))
        speed, rows = ("-", "-") if mode == "read" else (f"{r['rows'] / r['seconds']:.0f}", r["rows"])
        print(f"{name:<34}{n:>9}{shard_text:>8}{rows:>10}{r['shards']:>8}{r['seconds']:>8.1f}{speed:>9}"
              f"{r['peak_mb']:>9.0f}{r['peak_mb'] - read[n]:>10.0f}{r['peak_mb'] / read[large]:>7.2f}")
    print(f"rows/s = transfer-set rows built per second (augment, tokenise, label, write); over read = peak MB - the "
          f"read-only baseline at the same source size; ratio = peak / read-only baseline at {large} rows")


if __name__ == "__main__":
    main()
