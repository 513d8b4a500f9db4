"""Ray tier: data-free trials (zero_shot and as_dfd) in a real sweep on a local Ray instance, tracked in MLflow.

SST-2 dev with the real minilm-sst2 teacher, 300 QNLI sentences as the out-of-domain corpus, and
a few student steps per trial: this checks the wiring (the trials never read the task's training
data, one shared AS-DFD bank, diagnostics and generated samples in MLflow), not accuracy. The
sweep (tests/conftest.py ``method_sweep``) also runs the low-data tests' generation trials.
"""

import pytest


pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sweep(method_sweep):
    """The data-free half of the shared 4-trial sweep (conftest.method_sweep); generation runs beside them."""
    storage, outcome, _, _ = method_sweep
    outcome = type(outcome)(outcome.sweep_dir, [r for r in outcome.records if r.method in DATA_FREE], outcome.report)
    return storage, outcome


DATA_FREE = ("zero_shot", "as_dfd")


def test_each_data_free_method_runs_as_a_trial(sweep):
    from raykd.students import load_student

    storage, outcome = sweep
    assert sorted(r.method for r in outcome.records) == ["as_dfd", "zero_shot"]  # the first trials cover both
    assert [r.status for r in outcome.records] == ["TERMINATED", "TERMINATED"], [r.error for r in outcome.records]
    for record in outcome.records:
        student = load_student(record.checkpoint_dir)
        deployed = sum(p.numel() for p in student.parameters())
        # as_dfd's Linear(teacher width -> student width) is counted with the student; zero_shot in
        # the gumbel_vocab space feeds each model its own word vectors and needs none
        projection = 384 * 24 + 24 if record.method == "as_dfd" else 0
        assert record.student_params == deployed + projection
        assert 0 <= record.metric <= 1
    banks = list((storage / "cache" / "as_dfd_banks").glob("*/bank.pt"))
    assert len(banks) == 1  # built once, under the storage's shared cache


def test_mlflow_shows_no_task_data_and_the_diagnostics(sweep):
    from mlflow.tracking import MlflowClient

    storage, outcome = sweep
    client = MlflowClient(f"sqlite:///{storage}/mlflow.db")
    experiment = client.get_experiment_by_name("raykd-methods-ray")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "raykd.trial_id" in r.data.tags
                and r.data.params["method"] in DATA_FREE]
    assert len(children) == 2
    for child in children:
        assert child.info.status == "FINISHED"
        assert child.data.params["used_task_train_data"] == "false"
        assert {"gen_teacher_entropy", "gen_agreement", "gen_class_0"} <= set(child.data.metrics)
        files = {a.path for a in client.list_artifacts(child.info.run_id, "student")}
        assert "student/generated_samples.txt" in files  # nearest vocabulary tokens of generated samples
    by_method = {c.data.params["method"]: c for c in children}
    assert "bank_target_accuracy" in by_method["as_dfd"].data.metrics
    assert "gen_discrepancy" in by_method["zero_shot"].data.metrics
