"""Ray tier: a real low-data sweep where trials share generated and augmented transfer sets.

16 SST-2 sentences per class, the real minilm-sst2 teacher, a tiny from-scratch generator: checks
the wiring (each set built once across concurrent trials, every trial trains on it, examples shown
in MLflow, the low-data sample logged), not accuracy. The sweep (tests/conftest.py
``method_sweep``) also runs the data-free tests' trials.
"""

import json

import pytest

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sweep(method_sweep):
    """The generation half of the shared 4-trial sweep (conftest.method_sweep)."""
    storage, outcome, lines, _ = method_sweep
    outcome = type(outcome)(outcome.sweep_dir, [r for r in outcome.records if r.method == "generation"],
                            outcome.report)
    return storage, outcome, lines


def test_trials_share_each_transfer_set(sweep):
    storage, outcome, lines = sweep
    assert [r.status for r in outcome.records] == ["TERMINATED"] * 2, [r.error for r in outcome.records]
    # the first two trials are the arms (augment none, tang), started together: both ask for the same
    # generated set at once, one builds it while the other waits
    assert sorted(r.settings["generation/augment"] for r in outcome.records) == ["none", "tang"]
    builds = (storage / "cache" / "transfer_sets" / "builds.log").read_text().splitlines()
    kinds = sorted(line.split()[1] for line in builds)
    assert kinds == ["generation", "tang"]  # 2 trials asked for the generated set, 1 for the tang set
    generated = json.loads(next((storage / "cache" / "transfer_sets").glob("*/meta.json")).read_text())
    assert generated["stats"]["source_examples"] == 32
    assert any(line.startswith("low-data training set: 32 examples (16 per class") for line in lines)
    for record in outcome.records:  # the training set's size is a column of trials.csv, not a dev metric
        assert record.transfer_examples > 32 and not any(k.startswith("transfer_") for k in record.metrics)


def test_mlflow_shows_the_transfer_set(sweep):
    from mlflow.tracking import MlflowClient

    storage, outcome, _ = sweep
    client = MlflowClient(f"sqlite:///{storage}/mlflow.db")
    experiment = client.get_experiment_by_name("raykd-methods-ray")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "raykd.trial_id" not in r.data.tags)
    assert parent.data.params["train_examples"] == "32" and parent.data.params["train_size"] == "16"
    children = [r for r in runs if "raykd.trial_id" in r.data.tags and r.data.params["method"] == "generation"]
    assert len(children) == 2
    for child in children:
        metrics = child.data.metrics
        assert metrics["transfer_examples"] > 32 and metrics["transfer_generation_rows"] > 0
        files = {a.path for a in client.list_artifacts(child.info.run_id, "student")}
        assert "student/transfer_examples.txt" in files
    built = [c.data.metrics["transfer_built"] for c in children]
    assert 1 <= sum(built) <= 2  # the generated set's builder, and the tang set's (maybe the same trial)
    examples = [client.download_artifacts(c.info.run_id, "student/transfer_examples.txt", str(storage / "dl" / c.info.run_id))
                for c in children]
    assert any("# tang transfer set" in open(path).read() for path in examples)
