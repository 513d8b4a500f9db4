"""Resume: kill -9 a running sweep after a trial finished, continue it with --resume, lose nothing.

A 3-trial sweep runs in its own process group; once one trial has finished and the next has
reported an epoch, the whole group (driver, local Ray, workers) is killed with SIGKILL. Then
``raykd sweep --resume DIR`` must keep the finished trial without rerunning it, restart the
unfinished one from its checkpoint, run the remaining trial, and leave exactly one MLflow child
run per trial.
"""

import csv
import json
import os
import signal

import pytest

from conftest import (latest_checkpoints, raykd_process, storage_with_cache, tiny_space_raw, trial_results, wait_for,
                      write_space)
from raykd.trial.worker import PAUSE_ENV

pytestmark = pytest.mark.ray

EPOCHS = 2  # the kill comes after epoch 1's checkpoint; the resumed trial must train only epoch 2


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, tiny_cache):
    tmp = tmp_path_factory.mktemp("resume")
    raw = tiny_space_raw({"name": "resume", "training.epochs": EPOCHS, "budget.num_samples": 3,
                          "budget.max_concurrent": 2})
    space = write_space(tmp / "resume.yaml", raw)
    log = tmp / "first.txt"
    storage_with_cache(tmp / "runs", tiny_cache)
    # workers pause 2 s after each epoch, so the kill below finds a trial between checkpoints
    first = raykd_process(["sweep", "--space", str(space), "--storage", str(tmp / "runs"), "--no-estimate"], log,
                          env={**os.environ, PAUSE_ENV: "2"})
    try:
        sweep_dir = wait_for(lambda: next((tmp / "runs").glob("resume-*"), None), 120, "the sweep folder",
                             process=first, log=log)

        def one_finished_one_running():
            results = trial_results(sweep_dir)
            done = {t for t, rows in results.items() if any(r.get("final") for r in rows)}
            # committed a checkpoint before its last epoch: must continue from it after the resume
            running = {t for t, m in latest_checkpoints(sweep_dir).items() if t not in done and m["epoch"] < EPOCHS}
            return (done, running) if done and running else None

        finished, running = wait_for(one_finished_one_running, 400, "a finished and a running trial", poll_s=0.2,
                                     process=first, log=log)
        before = {t: (sweep_dir / "tune" / f"trial-{t}" / "result.json").read_text() for t in finished}
        reported = {t: metrics["epoch"] for t, metrics in latest_checkpoints(sweep_dir).items()}
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its Ray, as a crash would
        first.wait()
    second = raykd_process(["sweep", "--resume", str(sweep_dir), "--no-estimate"], tmp / "second.txt")
    assert second.wait(timeout=500) == 0, (tmp / "second.txt").read_text()[-3000:]
    return tmp, sweep_dir, finished, running, before, reported


def test_no_finished_trial_is_lost_or_duplicated(resumed):
    tmp, sweep_dir, finished, running, before, _ = resumed
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    ids = [row["trial_id"] for row in rows]
    print(f"before kill: finished {sorted(finished)}, running {sorted(running)}; after resume: {sorted(ids)}")
    assert len(ids) == len(set(ids)) == 3  # the whole budget, each trial once
    assert finished | running <= set(ids)
    assert all(row["status"] == "TERMINATED" for row in rows)
    for trial in finished:  # kept as it was, not rerun
        assert (sweep_dir / "tune" / f"trial-{trial}" / "result.json").read_text() == before[trial]
    front = list(csv.DictReader(open(sweep_dir / "pareto.csv")))
    assert front and {row["trial_id"] for row in front} <= set(ids)


def test_unfinished_trial_restarts_from_its_checkpoint(resumed):
    _, sweep_dir, _, running, _, reported = resumed
    for trial in running:
        results = trial_results(sweep_dir)[trial]  # what the trial reported after the resume
        assert results[-1]["final"] and results[-1]["epoch"] == EPOCHS
        # Train resumed from the checkpoint committed before the kill (start_epoch), not from scratch,
        # and trained only the epochs after it
        start = results[-1]["start_epoch"]
        assert start >= reported[trial] >= 1
        assert all(r["epoch"] > start for r in results if r["start_epoch"] == start and not r.get("final"))


def test_mlflow_has_one_child_run_per_trial(resumed):
    from mlflow.tracking import MlflowClient

    tmp, sweep_dir, _, _, _, _ = resumed
    meta = json.loads((sweep_dir / "sweep.json").read_text())
    client = MlflowClient(meta["mlflow_uri"])
    experiment = client.get_experiment_by_name("raykd-resume")
    parent = client.get_run(meta["mlflow_parent_run_id"])
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    ids = [c.data.tags["raykd.trial_id"] for c in children]
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert sorted(ids) == sorted(row["trial_id"] for row in rows)  # same trials, none twice
    assert all(c.info.status == "FINISHED" for c in children)
    assert parent.info.status == "FINISHED"
    assert "resuming sweep folder" in (tmp / "second.txt").read_text()
