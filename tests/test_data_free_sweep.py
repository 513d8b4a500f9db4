"""Ray tier: a real data-free sweep (zero_shot and as_dfd) on a local Ray instance, tracked in MLflow.

SST-2 dev with the real minilm-sst2 teacher, 300 QNLI sentences as the out-of-domain corpus, and
a few student steps per trial: this checks the wiring (never the task's training file, one shared
AS-DFD bank, diagnostics and generated samples in MLflow), not accuracy.
"""

import pytest

from conftest import GLUE, tiny_space_raw
from raykd.config import parse_space

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    import ray

    from raykd.sweep.run import SweepOptions, run_sweep

    raw = tiny_space_raw({"name": "datafree-ray", "data.ood": str(GLUE / "QNLI" / "dev.tsv"), "data.ood_limit": 300,
                          "data.dev_limit": 200, "training.epochs": 1, "training.steps_per_epoch": 8,
                          "training.batch_size": 16})
    raw["data"].pop("train_limit")
    raw["methods"] = {
        "zero_shot": {"generator": "noise", "gen_space": "gumbel_vocab", "gen_length": 8, "student_steps": 4},
        "as_dfd": {"bank_per_class": 8, "bank_steps": 5, "gen_length": 8, "adv_steps": 2, "projection": True},
    }
    raw["students"] = {"bilstm": {"embedding_dim": 24, "hidden_dim": 32, "mlp_dim": 32}}
    storage = tmp_path_factory.mktemp("runs")
    lines = []
    try:
        outcome = run_sweep(parse_space(raw), SweepOptions(storage=str(storage), num_cpus=2, echo=lines.append))
    finally:
        ray.shutdown()
    return storage, outcome


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
    experiment = client.get_experiment_by_name("raykd-datafree-ray")
    children = [r for r in client.search_runs([experiment.experiment_id]) if "raykd.trial_id" in r.data.tags]
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
