"""A single-task sweep over your own 4-class CSV with a base encoder: the teacher stage fine-tunes it, then it distils.

Real text from ../shared (STS-B sentences labelled by the corpus they come from: news headlines,
newswire, video captions, image captions; numeric labels 0-3 mapped to those names with
``data.labels``), the real all-MiniLM-L6-v2 encoder as ``teacher.base``, a real local Ray
instance. Checks that the teacher stage ran as a Ray task before the soft targets, that the teacher
it wrote to the cache is the one the trials distilled from and beats the majority class, that a
second look at the space (``raykd validate``) finds it cached, and that each trial's MLflow run
shows the report's figures.
"""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest
import yaml

from conftest import BASE, GLUE, REPO, invoke_cli

pytestmark = [pytest.mark.ray,
              pytest.mark.skipif(not (GLUE / "STS-B" / "train.tsv").is_file() or not (BASE / "config.json").is_file(),
                                 reason="needs the shared STS-B data and the all-MiniLM-L6-v2 encoder")]

SOURCES = {"headlines": 0, "MSRpar": 1, "MSRvid": 2, "images": 3}
NAMES = {0: "headline", 1: "newswire", 2: "video-caption", 3: "image-caption"}


def _corpus_csv(split: str, path, per_class: int) -> None:
    frame = pd.read_csv(GLUE / "STS-B" / f"{split}.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str)
    frame = frame[frame["filename"].isin(SOURCES)]
    rows = pd.DataFrame({"text": frame["sentence1"], "label": frame["filename"].map(SOURCES)}).drop_duplicates("text")
    rows = rows.groupby("label").head(per_class).sample(frac=1, random_state=0)
    rows.to_csv(path, index=False)


@pytest.fixture(scope="module")
def local_ray():
    """One local instance for this module's two sweeps (each would start its own: a few seconds each)."""
    import logging

    import ray

    from raykd.sweep.local_ray import start_local_ray
    from raykd.sweep.run import LOCAL_TRAIN_SETTINGS

    start_local_ray(3, env=LOCAL_TRAIN_SETTINGS, logging_level=logging.WARNING, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, local_ray):
    tmp = tmp_path_factory.mktemp("own-data")
    _corpus_csv("train", tmp / "train.csv", 150)
    _corpus_csv("dev", tmp / "dev.csv", 50)
    raw = {"name": "corpus4", "task": "corpus4",
           "data": {"train": str(tmp / "train.csv"), "dev": str(tmp / "dev.csv"), "text_columns": ["text"],
                    "label_column": "label", "labels": NAMES, "max_length": 32},
           "teacher": {"base": str(BASE), "fine_tune": True, "fine_tune_epochs": 2, "fine_tune_lr": 1.0e-4},
           "methods": {"vanilla": {"kd_loss": "mse"}},
           "students": {"bilstm": {"embedding_dim": 32, "hidden_dim": 32, "mlp_dim": 32}},
           "training": {"epochs": 5, "batch_size": 32, "lr": 3.0e-3}, "budget": {"num_samples": 1}}
    space = tmp / "corpus4.yaml"
    space.write_text(yaml.safe_dump(raw, sort_keys=False))
    storage = tmp / "runs"
    result, _ = invoke_cli(["sweep", "--space", str(space), "--storage", str(storage), "--num-cpus", "2", "--no-estimate"], [])
    assert result.exit_code == 0, (result.output, result.exception)
    return tmp, space, storage, next(storage.glob("corpus4-*")), result.output


def test_the_teacher_stage_fine_tunes_before_the_soft_targets(sweep):
    tmp, _, storage, sweep_dir, output = sweep
    lines = output.splitlines()
    stage = next(i for i, line in enumerate(lines) if "fine-tuning 1 teacher(s)" in line and "as Ray tasks" in line)
    done = next(i for i, line in enumerate(lines) if line.startswith("teacher for corpus4: fine-tuned in"))
    soft = next(i for i, line in enumerate(lines) if line.startswith("teacher: accuracy"))
    folder_line = next(i for i, line in enumerate(lines) if line.startswith("sweep folder:"))
    assert stage < done < folder_line < soft  # the sweep folder is created once the teacher exists
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    teacher = meta["teacher"]
    folders = list((storage / "cache" / "teachers").iterdir())
    assert [f for f in folders if f.is_dir()] and teacher["path"] == str(folders[0])
    card = json.loads((folders[0] / "training_card.json").read_text())
    assert card["labels"] == {str(k): v for k, v in NAMES.items()} and card["train_rows"] == 600
    assert json.loads((folders[0] / "config.json").read_text())["id2label"] == {str(k): v for k, v in NAMES.items()}
    assert meta["fine_tuned"]["cached"] is False and meta["fine_tuned"]["epochs"] == 2
    # 4 balanced classes: the majority class scores 0.25; the fine-tuned teacher must beat it
    assert meta["baseline"]["accuracy"] == pytest.approx(0.25)
    assert teacher["metric"] > 0.5, teacher


def test_the_student_distils_from_the_fine_tuned_teacher(sweep):
    *_, sweep_dir, output = sweep
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert [r["status"] for r in rows] == ["TERMINATED"]
    assert float(rows[0]["metric"]) > 0.4  # well above the 0.25 of the majority class
    assert "1 trials finished, 0 failed" in output


def test_validate_then_finds_the_teacher_in_the_cache(sweep):
    tmp, space, storage, *_ = sweep
    result, writes = invoke_cli(["validate", "--space", str(space), "--storage", str(storage)], [tmp, REPO])
    assert result.exit_code == 0, result.output
    assert not writes
    assert "already there, reused" in result.stdout and "cached teacher: accuracy" in result.stdout


def test_mlflow_shows_what_the_report_shows(sweep):
    from mlflow.tracking import MlflowClient

    _, _, storage, sweep_dir, _ = sweep
    client = MlflowClient(f"sqlite:///{storage / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("raykd-corpus4")
    rows = {r["trial_id"]: r for r in csv.DictReader(open(sweep_dir / "trials.csv"))}
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get("raykd.kind") == "trial"]
    assert {r.data.tags["raykd.trial_id"] for r in runs} == set(rows)
    for run in runs:
        row = rows[run.data.tags["raykd.trial_id"]]
        assert run.data.metrics["metric"] == pytest.approx(float(row["metric"]), abs=1e-12)
        assert run.data.metrics["accuracy"] == pytest.approx(float(row["dev_accuracy"]), abs=1e-12)
        assert run.info.run_name.startswith("vanilla-bilstm-") and run.info.run_name.endswith(row["trial_id"])


def test_a_fine_tuned_teacher_no_better_than_the_majority_stops_before_the_sweep_folder(tmp_path, local_ray):
    """Dev holds one class only, so the majority class scores 1.0 and no teacher can beat it: the sweep
    stops after the teacher stage (exit 1, one line), the teacher stays cached, no sweep folder exists;
    then validate finds the cached teacher and refuses it before anything is written."""
    from conftest import assert_input_error

    sentences = pd.read_csv(GLUE / "SST-2" / "dev.tsv", sep="\t", quoting=csv.QUOTE_NONE, dtype=str)["sentence"]
    pd.DataFrame({"text": sentences[:100], "label": ["a"] * 60 + ["b"] * 40}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": sentences[100:130], "label": ["a"] * 30}).to_csv(tmp_path / "dev.csv", index=False)
    raw = {"name": "lopsided", "task": "lopsided",
           "data": {"train": str(tmp_path / "train.csv"), "dev": str(tmp_path / "dev.csv"), "text_columns": ["text"],
                    "labels": ["a", "b"], "max_length": 32},
           "teacher": {"base": str(BASE), "fine_tune": True, "fine_tune_epochs": 1},
           "methods": {"vanilla": {}}, "students": {"bilstm": {"embedding_dim": 16, "hidden_dim": 16}},
           "budget": {"num_samples": 1}}
    space = tmp_path / "lopsided.yaml"
    space.write_text(yaml.safe_dump(raw, sort_keys=False))
    storage = tmp_path / "runs"
    result, _ = invoke_cli(["sweep", "--space", str(space), "--storage", str(storage), "--num-cpus", "2", "--no-estimate"], [])
    assert result.exit_code == 1, (result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors == result.stderr.splitlines()[-1:] and len(errors) == 1
    assert "the teacher fine-tuned for lopsided" in errors[0] and "majority-class baseline 1.0000" in errors[0]
    assert "raise teacher.fine_tune_epochs" in errors[0]
    assert not list(storage.glob("lopsided-*")) and not (storage / "mlflow.db").exists()
    assert len(list((storage / "cache" / "teachers").glob("*/training_card.json"))) == 1
    result, writes = invoke_cli(["validate", "--space", str(space), "--storage", str(storage)], [tmp_path, REPO])
    assert_input_error(result, writes, ("the teacher fine-tuned for lopsided, cached in", "does not beat"))
