"""What do raykd's local Ray Train settings save per trial, against Ray Train's defaults?

On a local instance it starts itself, raykd turns off Ray Train's preemption watcher (one more
process per trial; one machine has no node a cloud can preempt) and polls trial workers every
0.5 s instead of 2 s (``raykd.sweep.run.LOCAL_TRAIN_SETTINGS``). This runs the same short
2-trial sweep (2 at once, SST-2 slice, cached soft targets) alternately with Ray Train's defaults
(the baseline, set through the same environment variables) and with raykd's settings, and prints
the time from the sweep's start to its end and the mean trial time Tune measured, as ratios.
Usage::

    python benchmarks/trial_startup.py [--rounds 3] [--examples 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
RAY_DEFAULTS = {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "1", "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "2.0"}


def _space(examples: int) -> dict:
    return {
        "name": "bench-startup", "task": "sst2",
        "data": {"glue_dir": str(SHARED / "data/glue"), "max_length": 64, "train_limit": examples},
        "teacher": {"path": str(SHARED / "models/minilm-sst2")},
        "methods": {"vanilla": {"kd_loss": "mse", "alpha": 0.0}},
        "students": {"bilstm": {"embedding_dim": 64, "hidden_dim": 64, "embedding_init": "random"}},
        "training": {"lr": 2e-3, "epochs": 2, "batch_size": 32},
        "budget": {"num_samples": 2, "max_concurrent": 2},
        "resources": {"num_workers": 1, "cpus_per_worker": 1},
    }


def one_sweep(raw: dict, storage: str, environ: dict[str, str]) -> tuple[float, float]:
    """One 2-trial sweep with ``environ`` set. Returns (sweep wall s, mean trial time s from Tune)."""
    import ray

    from raykd.config import parse_space
    from raykd.sweep.run import SweepOptions, run_sweep

    os.environ.update(environ)
    try:
        started = time.perf_counter()
        outcome = run_sweep(parse_space(raw), SweepOptions(storage=storage, num_cpus=2, echo=lambda _: None))
        wall = time.perf_counter() - started
        ray.shutdown()
    finally:
        for name in environ:
            os.environ.pop(name, None)
    assert [r.status for r in outcome.records] == ["TERMINATED", "TERMINATED"], outcome.records
    times = [json.loads((outcome.sweep_dir / "tune" / f"trial-{r.trial_id}" / "result.json").read_text()
                        .splitlines()[-1])["time_total_s"] for r in outcome.records]
    return wall, statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="sweeps per variant, run alternately")
    parser.add_argument("--examples", type=int, default=2000, help="SST-2 training examples per trial")
    args = parser.parse_args()

    from raykd._quiet import quiet_libraries
    from raykd.sweep.run import LOCAL_TRAIN_SETTINGS

    quiet_libraries()
    clash = set(LOCAL_TRAIN_SETTINGS) & set(os.environ)
    if clash:
        raise SystemExit(f"unset {', '.join(sorted(clash))} first: the benchmark sets them itself")
    raw = _space(args.examples)
    runs: dict[str, list[tuple[float, float]]] = {"ray": [], "raykd": []}
    with tempfile.TemporaryDirectory() as storage:
        one_sweep(raw, storage, {})  # fills the soft-target cache both variants then read
        for round_ in range(args.rounds):
            for name, environ in (("ray", RAY_DEFAULTS), ("raykd", {})):
                runs[name].append(one_sweep(raw, storage, environ))
                print(f"round {round_ + 1} {name:5s}: sweep {runs[name][-1][0]:.1f} s, "
                      f"mean trial {runs[name][-1][1]:.1f} s", flush=True)

    base_wall = statistics.mean(w for w, _ in runs["ray"])
    base_trial = statistics.mean(t for _, t in runs["ray"])
    print(f"\n2-trial sweep (2 at once), SST-2 {args.examples} examples x 2 epochs, BiLSTM, {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs")
    print(f"{'variant':52s} {'sweep s':>8s} {'ratio':>6s} {'trial s':>8s} {'ratio':>6s}")
    for name, label in (("ray", "baseline: Ray Train defaults (watcher on, poll 2 s)"),
                        ("raykd", "raykd local settings (watcher off, poll 0.5 s)")):
        wall = statistics.mean(w for w, _ in runs[name])
        trial = statistics.mean(t for _, t in runs[name])
        print(f"{label:52s} {wall:8.1f} {wall / base_wall:6.2f} {trial:8.1f} {trial / base_trial:6.2f}")
    print("ratio = variant / baseline (lower is faster); means over the rounds")


if __name__ == "__main__":
    main()
