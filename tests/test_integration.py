"""Integration tier: real SST-2 slices, the real teacher, real training (no Ray cluster needed).

The trial test drives raykd's Ray Train worker function through Ray Train's local mode
(``ScalingConfig(num_workers=0)``: the same ``ray.train`` API, run in-process), so the code a
sweep runs on every worker is exercised end to end on a 2,000-example slice.
"""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import BASE, GLUE, tiny_space_raw
from raykd.checks import check_inputs
from raykd.config import parse_space
from raykd.sweep.stage import build_stage
from raykd.trial.plan import TrialContext

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stage(tiny_stage):
    space, inputs, built, _ = tiny_stage
    return space, inputs, built


def test_stage_measures_the_teacher(stage):
    _, inputs, built = stage
    assert built.teacher.params == 22_713_986
    assert built.teacher.metric == pytest.approx(0.8968, abs=1e-4)  # the teacher card's dev accuracy
    assert built.teacher.latency_ms > 0
    assert built.baseline["accuracy"] == pytest.approx(444 / 872)
    assert len(built.splits["train"].load()) == 2000 == len(inputs.frames["train"])


def test_a_teacher_checked_once_is_not_loaded_again_for_the_same_cache(tiny_stage, monkeypatch):
    """The stage stored the check's dev outputs, flagged: a later check of the same files reads them without
    loading the teacher; a teacher whose files differ (another fingerprint) would get another key."""
    import raykd.teachers.load as load
    from raykd.teachers import quality
    from raykd.teachers.cache import cached_split_path, teacher_was_checked

    space, inputs, _, cache = tiny_stage
    dev = cached_split_path(cache, inputs.teacher.path, inputs.frames["dev"], space.data.max_length)
    assert dev is not None and teacher_was_checked(dev)
    monkeypatch.setattr(quality, "_MEMO", {})
    monkeypatch.setattr(load, "load_checked_teacher", lambda *a, **k: pytest.fail("the teacher was loaded again"))
    check = quality.check_teacher(inputs.teacher.path, inputs.task, inputs.frames, max_length=space.data.max_length,
                                  cache_dir=cache)
    assert check.from_cache and check.metric == pytest.approx(0.8968, abs=1e-4)


def test_one_trial_beats_the_majority_baseline(stage, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raykd.trial.worker import train_fn_per_worker

    space, inputs, built = stage
    context = TrialContext(task=inputs.task, train_cache=str(built.splits["train"].path),
                           eval_caches={"dev": str(built.splits["dev"].path)}, teacher_path=inputs.teacher.path,
                           teacher_config=inputs.teacher.config, teacher_params=built.teacher.params,
                           pad_id=built.pad_id, max_length=64, resources=space.resources,
                           train_storage=str(tmp_path), seed=0)
    trial = {"method": "vanilla", "vanilla": {"kd_loss": "mse", "temperature": 1.0, "alpha": 0.0},
             "student": "bilstm", "bilstm": {"embedding_dim": 64, "hidden_dim": 64},
             "lr": 3e-3, "epochs": 3, "batch_size": 32, "weight_decay": 0.01, "warmup_ratio": 0.06, "grad_clip": 1.0}
    trainer = TorchTrainer(train_fn_per_worker, train_loop_config={"trial": trial, "context": context},
                           scaling_config=ScalingConfig(num_workers=0),
                           run_config=RunConfig(name="one-trial", storage_path=str(tmp_path)))
    import ray

    try:
        result = trainer.fit()
    finally:
        ray.shutdown()  # fit() may start Ray itself; a later sweep must start its own instance
    metrics = result.metrics
    print(f"student dev accuracy {metrics['best_metric']:.4f} vs majority {built.baseline['accuracy']:.4f}")
    assert metrics["epoch"] == 3
    assert metrics["best_metric"] > built.baseline["accuracy"] + 0.1
    assert metrics["student_params"] < built.teacher.params and metrics["compression_ratio"] > 5
    assert metrics["latency_ms"] > 0


def test_teacher_fine_tune_command(tmp_path):
    from raykd.cli import main

    out = tmp_path / "teacher"
    result = CliRunner().invoke(main, ["teacher", "fine-tune", "--task", "sst2", "--base", str(BASE), "--out", str(out),
                                       "--glue-dir", str(GLUE), "--epochs", "1", "--train-limit", "1000",
                                       "--max-length", "64", "--lr", "2e-4"])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "training_card.json").read_text())
    assert card["train_rows"] == 1000 and card["labels"] == {"0": "negative", "1": "positive"}
    assert card["dev_metrics"]["accuracy"] > 0.6  # majority class is 0.509
    assert "dev: accuracy" in result.output and (out / "README.md").is_file()
    # the result is a teacher raykd accepts for the task
    from raykd.data.tasks import get_task
    from raykd.teachers.load import check_teacher_labels, inspect_teacher

    check_teacher_labels(inspect_teacher(str(out)), get_task("sst2"))
    assert np.isfinite(card["dev_metrics"]["accuracy"])


def test_quick_start_with_your_own_csv_task(tmp_path):
    """README's quick start: your own task in CSV files, labels by name, checked and labelled by the teacher."""
    import yaml

    from raykd.cli import main
    from raykd.data.readers import read_glue
    from raykd.data.tasks import get_task

    names = {0: "negative", 1: "positive"}
    for split, rows in (("train", 300), ("dev", 200)):
        frame = read_glue(GLUE, get_task("sst2"), split).sample(n=rows, random_state=0)
        frame.assign(text=frame.text_a, label=frame.label.map(names))[["text", "label"]].to_csv(
            tmp_path / f"reviews_{split}.csv", index=False)
    raw = tiny_space_raw()
    raw.update(name="reviews", task="reviews")
    raw["data"] = {"train": str(tmp_path / "reviews_train.csv"), "dev": str(tmp_path / "reviews_dev.csv"),
                   "text_columns": ["text"], "label_column": "label", "labels": ["negative", "positive"],
                   "metric": "accuracy", "max_length": 64}
    space_file = tmp_path / "reviews.yaml"
    space_file.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["validate", "--space", str(space_file)])
    assert result.exit_code == 0, result.output
    assert "task reviews" in result.output and "train 300, dev 200" in result.output
    space = parse_space(raw)
    built = build_stage(space, check_inputs(space), tmp_path / "cache", progress=False)
    assert built.teacher.metric > 0.8  # the SST-2 teacher on SST-2 sentences relabelled by name
