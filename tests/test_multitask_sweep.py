"""Ray tier: a real two-task sweep (SST-2 + STS-B) with the teacher stage, multitask and single-task trials.

SST-2 uses the ready minilm-sst2 teacher; STS-B gets a teacher fine-tuned from all-MiniLM-L6-v2 on
64 sentence pairs by the teacher stage (a Ray task), cached for the next sweep. One multitask trial
(per-task fine-tuning on) and one vanilla trial (one student per task) with the same tiny BiLSTM.
Checks the wiring (per-task metrics and sizes, the fronts, MLflow, the cache), not accuracy.
"""

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import BASE, GLUE, TEACHER

pytestmark = pytest.mark.ray


def _space(name: str) -> dict:
    return {
        "name": name, "tasks": ["sst2", "stsb"],
        "data": {"glue_dir": str(GLUE), "max_length": 48, "train_limit": 64, "dev_limit": 64},
        # 64 pairs and one epoch make an STS-B teacher no better than the mean (checked below): this test
        # is about the wiring, so it lets the sweep distil from it anyway
        "teacher": {"paths": {"sst2": str(TEACHER)}, "base": str(BASE), "fine_tune": True, "fine_tune_epochs": 1,
                    "fine_tune_batch_size": 16, "allow_weak": True},
        "methods": {"vanilla": {"kd_loss": "mse"}, "multitask": {"kd_loss": "mse", "finetune_epochs": 1}},
        "students": {"bilstm": {"embedding_dim": 16, "hidden_dim": 16, "mlp_dim": 16, "pooling": "attention",
                                "embedding_init": "random"}},
        "training": {"lr": 3.0e-3, "epochs": 2, "batch_size": 16},
        "budget": {"num_samples": 2, "max_concurrent": 2},
        "resources": {"num_workers": 1, "cpus_per_worker": 1}, "seed": 0,
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    import ray

    from raykd.config import parse_space
    from raykd.sweep.run import SweepOptions, run_sweep

    storage = tmp_path_factory.mktemp("runs")
    lines: list[str] = []
    try:
        outcome = run_sweep(parse_space(_space("two-tasks")), SweepOptions(storage=str(storage), num_cpus=2,
                                                                             echo=lines.append), estimate=False)
    finally:
        ray.shutdown()
    return storage, outcome, lines


def test_teacher_stage_fine_tunes_once_and_caches(sweep):
    storage, outcome, lines = sweep
    assert any(line.startswith("fine-tuning 1 teacher(s) from all-MiniLM-L6-v2 as Ray tasks of ")
               and line.endswith("CPU each: stsb (64 examples)") for line in lines), lines
    cards = list((storage / "cache" / "teachers").glob("*/training_card.json"))
    assert len(cards) == 1
    card = json.loads(cards[0].read_text())
    assert card["task"] == "stsb" and card["train_rows"] == 64 and "pearson" in card["dev_metrics"]
    meta = json.loads((outcome.sweep_dir / "sweep.json").read_text())
    assert list(meta["tasks"]) == ["sst2", "stsb"] and meta["metric_name"] == "macro"
    assert meta["tasks"]["stsb"]["fine_tuned"]["cached"] is False and meta["tasks"]["sst2"]["fine_tuned"] is None
    assert Path(meta["tasks"]["sst2"]["teacher"]["path"]) == TEACHER.resolve()
    teacher_macro = (meta["tasks"]["sst2"]["teacher"]["metric"] + meta["tasks"]["stsb"]["teacher"]["metric"]) / 2
    assert meta["teacher"]["metric"] == pytest.approx(teacher_macro)
    # the weak fine-tuned teacher is measured and named, not hidden
    weak = [line for line in lines if line.startswith("warning: the teacher for stsb does not beat the majority class")]
    assert len(weak) == (meta["tasks"]["stsb"]["teacher"]["metric"] <= 0.0), lines
    assert not any(line.startswith("warning: the teacher for sst2") for line in lines)


def test_trials_report_each_task_and_the_macro(sweep):
    _, outcome, _ = sweep
    records = {r.method: r for r in outcome.records}
    assert sorted(records) == ["multitask", "vanilla"]
    for record in records.values():
        assert record.status == "TERMINATED", record.error
        per_task = [record.metrics["sst2/metric"], record.metrics["stsb/metric"]]
        assert record.metric == pytest.approx(sum(per_task) / 2)
        assert "sst2/accuracy" in record.metrics and "stsb/spearman" in record.metrics
    mtl, single = records["multitask"], records["vanilla"]
    # same family and size: each task's model is the same size either way; fine-tuned per task, the
    # multitask student's task models no longer share the encoder, so the totals match too
    assert mtl.metrics["sst2/params"] == single.metrics["sst2/params"]
    assert mtl.student_params == single.student_params == single.metrics["sst2/params"] + single.metrics["stsb/params"]
    assert "sst2/metric_before_finetune" in mtl.metrics and "macro_before_finetune" in mtl.metrics
    # the joint epochs report the shared student: counted once, shared encoder + both heads
    tune_dir = outcome.sweep_dir / "tune" / f"trial-{mtl.trial_id}"
    joint = [json.loads(line) for line in (tune_dir / "result.json").read_text().splitlines()][0]
    assert joint["student_params"] == joint["shared_params"] + (joint["sst2/params"] - joint["shared_params"]) + (
        joint["stsb/params"] - joint["shared_params"])
    assert joint["student_params"] < mtl.student_params


def test_checkpoints_hold_one_student_per_task(sweep):
    _, outcome, _ = sweep
    from raykd.students import load_student

    for record in outcome.records:
        for task in ("sst2", "stsb"):
            folder = f"{record.checkpoint_dir}/{task}"
            model = load_student(folder)
            spec = json.loads(open(f"{folder}/student.json").read())
            assert spec["context"]["num_labels"] == (1 if task == "stsb" else 2)
            assert sum(p.numel() for p in model.parameters()) == record.metrics[f"{task}/params"]


def test_report_writes_a_front_per_task_and_logs_it(sweep):
    _, outcome, _ = sweep
    sweep_dir = outcome.sweep_dir
    for name in ("fronts/sst2.csv", "fronts/stsb.csv", "fronts/macro.csv", "pareto_tasks.png", "task_metrics.csv"):
        assert (sweep_dir / name).is_file() and (sweep_dir / name).stat().st_size > 0, name
    table = pd.read_csv(sweep_dir / "task_metrics.csv")
    assert len(table) == 2 and {"sst2", "stsb", "macro"} <= set(table.columns)
    import mlflow

    meta = json.loads((sweep_dir / "sweep.json").read_text())
    client = mlflow.MlflowClient(meta["mlflow_uri"])
    logged = {a.path for a in client.list_artifacts(meta["mlflow_parent_run_id"])}
    assert {"pareto_tasks.png", "task_metrics.csv"} <= logged, logged
    run = client.get_run(meta["mlflow_parent_run_id"])
    assert "hypervolume/sst2" in run.data.metrics and run.data.params["tasks"] == "sst2,stsb"
