"""What the pre-sweep checks cost, against the soft-target stage they precede, measured in one run.

The checks load and measure every ready teacher on dev before anything is written; the stage then
stores those dev outputs in the soft-target cache instead of running the teacher over dev again.
Printed, on SST-2 (the minilm-sst2 teacher, ``--train-limit`` training sentences, all 872 dev):

* ``preflight`` (what ``raykd validate`` and the start of ``raykd sweep`` run) vs the stage;
* the stage given the check's dev outputs vs the stage computing dev itself (the baseline).

    python benchmarks/preflight.py [--train-limit 10000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"


def _space(train_limit: int):
    from raykd.config import parse_space

    return parse_space({"name": "bench", "task": "sst2",
                        "data": {"glue_dir": str(SHARED / "data" / "glue"), "max_length": 64, "train_limit": train_limit},
                        "teacher": {"path": str(SHARED / "models" / "minilm-sst2")}, "methods": {"vanilla": {}},
                        "students": {"bilstm": {}}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-limit", type=int, default=10_000)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: F401 - imports untimed

    from raykd.sweep.preflight import SweepOptions, preflight
    from raykd.sweep.stage import build_stage
    from raykd.teachers import quality

    space = _space(args.train_limit)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        pre = preflight(space, SweepOptions(storage=str(Path(tmp) / "a"), echo=lambda _: None))
        checks = time.perf_counter() - started
        (name, task), = pre.tasks.items()
        started = time.perf_counter()
        build_stage(task.space, task.inputs, Path(tmp) / "a" / "cache", progress=False, teacher_check=pre.teachers[name].check)
        reused = time.perf_counter() - started
        quality._MEMO.clear()
        started = time.perf_counter()
        build_stage(task.space, task.inputs, Path(tmp) / "b" / "cache", progress=False)
        baseline = time.perf_counter() - started
    rows = len(task.inputs.frames["train"]), len(task.inputs.frames["dev"])
    print(f"SST-2 {rows[0]:,} train + {rows[1]:,} dev sentences, minilm-sst2, max_length 64, "
          f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}")
    print(f"{'variant':62s} {'seconds':>8s} {'ratio':>6s}")
    print(f"{'baseline: soft-target stage computing every split':62s} {baseline:8.1f} {1.0:6.2f}")
    print(f"{'soft-target stage storing the checks dev outputs':62s} {reused:8.1f} {reused / baseline:6.2f}")
    print(f"{'pre-sweep checks (raykd validate): teacher loaded + measured':62s} {checks:8.1f} "
          f"{checks / baseline:6.2f}")
    print(f"{'checks + stage, as a sweep runs them':62s} {checks + reused:8.1f} {(checks + reused) / baseline:6.2f}")
    print("ratio = variant / baseline (lower is faster)")


if __name__ == "__main__":
    main()
