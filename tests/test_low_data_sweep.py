"""Ray tier: a real low-data sweep where trials share generated and augmented transfer sets.

16 SST-2 sentences per class, the real minilm-sst2 teacher, a tiny from-scratch generator: checks
the wiring (each set built once across concurrent trials, every trial trains on it, examples shown
in MLflow, the low-data sample logged), not accuracy.
"""

import json

import pytest

from conftest import tiny_space_raw
from raykd.config import parse_space

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    import ray

    from raykd.sweep.run import SweepOptions, run_sweep

    raw = tiny_space_raw({"name": "lowdata-ray", "data.train_size": 16, "data.dev_limit": 200,
                          "training.epochs": 1, "training.batch_size": 16, "budget.num_samples": 3})
    raw["data"].pop("train_limit")
    raw["methods"] = {"generation": {"gen_layers": 1, "gen_dim": 32, "gen_heads": 2, "gen_epochs": 2, "multiple": 2.0,
                                     "augment": ["none", "tang"], "n_iter": 2}}
    raw["students"] = {"bilstm": {"embedding_dim": 24, "hidden_dim": [16, 32], "mlp_dim": 32}}
    storage = tmp_path_factory.mktemp("runs")
    lines = []
    try:
        outcome = run_sweep(parse_space(raw), SweepOptions(storage=str(storage), num_cpus=2, echo=lines.append))
    finally:
        ray.shutdown()
    return storage, outcome, lines


def test_trials_share_each_transfer_set(sweep):
    storage, outcome, lines = sweep
    assert [r.status for r in outcome.records] == ["TERMINATED"] * 3, [r.error for r in outcome.records]
    builds = (storage / "cache" / "transfer_sets" / "builds.log").read_text().splitlines()
    kinds = sorted(line.split()[1] for line in builds)
    assert kinds == ["generation", "tang"]  # 3 trials asked for the generated set, 1-2 for the tang set
    generated = json.loads(next((storage / "cache" / "transfer_sets").glob("*/meta.json")).read_text())
    assert generated["stats"]["source_examples"] == 32
    assert any(line.startswith("low-data training set: 32 examples (16 per class") for line in lines)
    for record in outcome.records:  # the training set's size is a column of trials.csv, not a dev metric
        assert record.transfer_examples > 32 and not any(k.startswith("transfer_") for k in record.metrics)


def test_mlflow_shows_the_transfer_set(sweep):
    from mlflow.tracking import MlflowClient

    storage, outcome, _ = sweep
    client = MlflowClient(f"sqlite:///{storage}/mlflow.db")
    experiment = client.get_experiment_by_name("raykd-lowdata-ray")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "raykd.trial_id" not in r.data.tags)
    assert parent.data.params["train_examples"] == "32" and parent.data.params["train_size"] == "16"
    children = [r for r in runs if "raykd.trial_id" in r.data.tags]
    assert len(children) == 3
    for child in children:
        metrics = child.data.metrics
        assert metrics["transfer_examples"] > 32 and metrics["transfer_generation_rows"] > 0
        files = {a.path for a in client.list_artifacts(child.info.run_id, "student")}
        assert "student/transfer_examples.txt" in files
    built = [c.data.metrics["transfer_built"] for c in children]
    assert 1 <= sum(built) <= 2  # the generated set's builder, and the tang set's (maybe the same trial)
