"""Cost of one multi-task student against one single-task student per task, on the same data.

Both variants distil BiLSTM students of one size on real GLUE training text (teacher tokenizer,
random stand-in teacher logits: speed does not depend on their values) for one epoch per task:

- baseline, single-task: one student per task, trained one task after the other with
  :func:`raykd.distill.loop.fit` (what a single-task method's trial does in a multi-task sweep);
- multi-task: one student with a shared encoder and a head per task, trained with
  :func:`raykd.distill.multitask.fit_multitask` (MT-DNN's proportional schedule: the same batches).

It prints wall time and examples per second of each, their ratio, and the parameters that serve
every task (the shared student counts its encoder once). One torch thread, as a trial runs.

Run: ``python benchmarks/multitask_loop.py [--tasks sst2 cola mrpc rte stsb] [--limit 2000]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
STUDENT = {"embedding_dim": 64, "hidden_dim": 128, "mlp_dim": 128, "pooling": "attention", "embedding_init": "random"}


def _splits(tasks: list[str], limit: int, max_length: int) -> dict:
    """Task -> (TaskSpec, EncodedSplit with stand-in teacher logits)."""
    from raykd.data.encoding import encode_frame
    from raykd.data.sources import load_split
    from raykd.data.tasks import get_task
    from raykd.config import DataConfig
    from raykd.teachers.load import load_tokenizer

    tokenizer = load_tokenizer(str(SHARED / "models" / "all-MiniLM-L6-v2"))
    data = DataConfig(glue_dir=str(SHARED / "data" / "glue"), max_length=max_length, train_limit=limit)
    rng = np.random.default_rng(0)
    out = {}
    for name in tasks:
        task = get_task(name)
        split = encode_frame(tokenizer, load_split(data, task, "train", seed=0), max_length)
        split.teacher_logits = rng.normal(size=(len(split), task.num_labels)).astype(np.float32)
        out[name] = (task, split)
    return out


def main() -> None:
    import torch

    from raykd._quiet import quiet_libraries
    from raykd.distill.loop import LoopSettings, fit
    from raykd.distill.multitask import fit_multitask
    from raykd.methods.vanilla import VanillaKD
    from raykd.students import StudentContext, build_student, count_parameters
    from raykd.students.multitask import build_multitask_student, multitask_param_counts

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["sst2", "cola", "mrpc", "rte", "stsb"])
    parser.add_argument("--limit", type=int, default=2000, help="training examples per task")
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    quiet_libraries()
    torch.set_num_threads(1)
    splits = _splits(args.tasks, args.limit, args.max_length)
    contexts = {t: StudentContext(num_labels=task.num_labels, is_pair=task.is_pair, vocab_size=30522, pad_token_id=0,
                                  max_length=args.max_length, teacher_config={}) for t, (task, _) in splits.items()}
    objectives = {t: VanillaKD(kd_loss="mse", temperature=1.0, alpha=0.0, regression=task.is_regression).objective
                  for t, (task, _) in splits.items()}
    settings = LoopSettings(epochs=1, batch_size=32, lr=2e-3)
    examples = sum(len(split) for _, split in splits.values())
    quiet = {"evaluate": lambda model: {"m": 0.0}, "primary": "m", "report": lambda metrics, state: None}

    torch.manual_seed(0)
    students = {t: build_student("bilstm", STUDENT, contexts[t]) for t in splits}  # built outside the timing
    single_params = sum(count_parameters(s).total for s in students.values())
    started = time.perf_counter()
    for t, (_, split) in splits.items():
        fit(students[t], objectives[t], split, settings, pad_id=0, **quiet)
    single_s = time.perf_counter() - started

    torch.manual_seed(0)
    student = build_multitask_student("bilstm", STUDENT, contexts)
    started = time.perf_counter()
    fit_multitask(student, objectives, {t: s for t, (_, s) in splits.items()}, settings, pad_id=0, **quiet)
    multi_s = time.perf_counter() - started
    multi_params = multitask_param_counts(student)["total"]

    print(f"{len(splits)} tasks ({', '.join(splits)}), {examples:,} training examples, one epoch, BiLSTM "
          f"{STUDENT['embedding_dim']}/{STUDENT['hidden_dim']} attention pooling, 1 thread")
    print(f"baseline, one student per task: {single_s:6.1f} s  {examples / single_s:7.0f} examples/s  "
          f"{single_params / 1e6:.2f}M parameters for all tasks")
    print(f"multi-task student:              {multi_s:6.1f} s  {examples / multi_s:7.0f} examples/s  "
          f"{multi_params / 1e6:.2f}M parameters for all tasks")
    print(f"ratio multi-task / baseline: time {multi_s / single_s:.2f}x, parameters {multi_params / single_params:.2f}x")


if __name__ == "__main__":
    main()
