"""Ray tier: a real 2-trial sweep on a local Ray instance, tracked in a real MLflow store."""

import csv

import pytest
from click.testing import CliRunner

from conftest import tiny_space_raw
from raykd.config import parse_space

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    import ray

    from raykd.sweep.run import SweepOptions, run_sweep

    storage = tmp_path_factory.mktemp("runs")
    lines = []
    try:
        outcome = run_sweep(parse_space(tiny_space_raw()),
                            SweepOptions(storage=str(storage), num_cpus=2, echo=lines.append))
    finally:
        ray.shutdown()
    return storage, outcome, lines


def test_both_trials_finish_with_a_front(sweep):
    storage, outcome, lines = sweep
    assert [r.status for r in outcome.records] == ["TERMINATED", "TERMINATED"]
    assert {r.student for r in outcome.records} <= {"bilstm", "transformer"}
    from raykd.students import load_student

    for record in outcome.records:
        assert 0.5 < record.metric <= 1 and record.student_params > 0 and record.latency_ms > 0
        assert record.compression_ratio == pytest.approx(22_713_986 / record.student_params)
        # the best epoch's checkpoint rebuilds the student without the teacher
        student = load_student(record.checkpoint_dir)
        assert sum(p.numel() for p in student.parameters()) == record.student_params
    rows = list(csv.DictReader(open(outcome.sweep_dir / "trials.csv")))
    front = list(csv.DictReader(open(outcome.sweep_dir / "pareto.csv")))
    assert len(rows) == 2 and 1 <= len(front) <= 2
    assert (outcome.sweep_dir / "pareto.png").stat().st_size > 1000
    assert any("finished" in line for line in lines) and any("Pareto front" in line for line in lines)


def test_trials_land_in_mlflow_under_the_sweep(sweep):
    from mlflow.tracking import MlflowClient

    storage, outcome, _ = sweep
    client = MlflowClient(f"sqlite:///{storage}/mlflow.db")
    experiment = client.get_experiment_by_name("raykd-sst2-tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raykd.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["raykd.trial_id"] for c in children} == {r.trial_id for r in outcome.records}
    for child in children:
        assert child.info.status == "FINISHED"
        assert {"best_metric", "student_params", "compression_ratio", "latency_ms"} <= set(child.data.metrics)
        assert "student" in child.data.params and "vanilla/kd_loss" in child.data.params
        assert len(client.get_metric_history(child.info.run_id, "metric")) == 2  # one per epoch
        files = {a.path for a in client.list_artifacts(child.info.run_id, "student")}
        assert "student/student.safetensors" in files and "student/student.json" in files
        assert "student/train_state.pt" not in files  # optimiser state stays in the sweep's storage
    parent_files = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"trials.csv", "pareto.csv", "pareto.png", "space.yaml"} <= parent_files
    assert "hypervolume" in parents[0].data.metrics


def test_report_re_renders_a_finished_sweep(sweep):
    from raykd.cli import main

    _, outcome, _ = sweep
    before = (outcome.sweep_dir / "pareto.csv").read_text()
    (outcome.sweep_dir / "pareto.csv").unlink()
    result = CliRunner().invoke(main, ["report", str(outcome.sweep_dir)])
    assert result.exit_code == 0, result.output
    assert (outcome.sweep_dir / "pareto.csv").read_text() == before  # MLflow run ids included
    offline = CliRunner().invoke(main, ["report", str(outcome.sweep_dir), "--no-mlflow"])
    assert offline.exit_code == 0 and "2 trials finished" in offline.output
    assert "2 trials finished, 0 failed" in result.output
