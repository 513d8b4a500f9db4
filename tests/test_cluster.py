"""A real two-node Ray cluster on 127.0.0.1 and a real MLflow tracking server.

The head (``ray start --head``, 1 CPU, custom resource ``raykd_head``) and a second node
(``ray start --address``, 2 CPUs, custom resource ``raykd_worker``) run as separate raylets with
their own ports; ``mlflow server`` runs with a SQLite backend. A 2-trial sweep attaches with
``--address`` and tracks to the server with ``--mlflow-uri``; the space asks for one
``raykd_worker`` per Train worker, so every trial must train on the second node. Both nodes and
the server are stopped at the end, also when a test fails.

This sweep is also the suite's check of an ordinary sweep's output (trials, the front, the
checkpoints, each trial's MLflow run, ``raykd report``); a sweep on a local instance is covered by
the fault, resume, method and multi-task sweeps.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, http_healthy, raykd_process, storage_with_cache, tiny_space_raw, trial_results, wait_for, write_space

pytestmark = pytest.mark.ray

BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "RAY_AUTH_MODE": "disabled"})


def _stop(group: subprocess.Popen) -> None:
    try:
        os.killpg(group.pid, signal.SIGKILL)  # the node's raylet, agents and workers share its group
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    gcs, dashboard, client, *agents = _free_ports(12)
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    started = []
    try:
        mlflow_port = agents[8]  # the server starts while the Ray nodes do
        started.append(_start([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                               "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                               "--artifacts-destination", str(tmp / "mlartifacts")], tmp / "mlflow.txt"))
        head = _start([str(BIN / "ray"), "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
                       "--dashboard-host=127.0.0.1", f"--ray-client-server-port={client}", "--num-cpus=1",
                       '--resources={"raykd_head": 1}', f"--dashboard-agent-listen-port={agents[0]}",
                       f"--dashboard-agent-grpc-port={agents[1]}", f"--metrics-export-port={agents[2]}",
                       f"--runtime-env-agent-port={agents[3]}", *common], tmp / "head.txt")
        started.append(head)
        assert head.wait(timeout=120) == 0, (tmp / "head.txt").read_text()
        worker = _start([str(BIN / "ray"), "start", f"--address=127.0.0.1:{gcs}", "--num-cpus=2",
                         '--resources={"raykd_worker": 2}', f"--dashboard-agent-listen-port={agents[4]}",
                         f"--dashboard-agent-grpc-port={agents[5]}", f"--metrics-export-port={agents[6]}",
                         f"--runtime-env-agent-port={agents[7]}", *common], tmp / "worker.txt")
        started.append(worker)
        assert worker.wait(timeout=120) == 0, (tmp / "worker.txt").read_text()
        wait_for(lambda: http_healthy(f"http://127.0.0.1:{mlflow_port}"), 90, "the MLflow server")
        yield tmp, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{mlflow_port}"
    finally:
        for group in reversed(started):
            _stop(group)
        current = Path("/tmp/ray/ray_current_cluster")  # what `ray stop` would clean up after our head
        if current.is_file() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()


def _nodes(address: str) -> dict[str, dict]:
    code = ("import json, ray; ray.init(address=%r, log_to_driver=False); "
            "print(json.dumps({n['NodeID']: n['Resources'] for n in ray.nodes() if n['Alive']}))" % address)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sweep(cluster, tiny_cache):
    tmp, address, mlflow_uri = cluster
    raw = tiny_space_raw({"name": "cluster", "resources.worker_resources": {"raykd_worker": 1}})
    space = write_space(tmp / "cluster.yaml", raw)
    storage_with_cache(tmp / "runs", tiny_cache)
    started = time.monotonic()
    process = raykd_process(["sweep", "--space", str(space), "--storage", str(tmp / "runs"), "--address", address,
                             "--mlflow-uri", mlflow_uri], tmp / "sweep.txt")
    try:
        assert process.wait(timeout=500) == 0, (tmp / "sweep.txt").read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    print(f"2-trial sweep on the 2-node cluster: {time.monotonic() - started:.0f} s")
    return tmp, address, mlflow_uri, next((tmp / "runs").glob("cluster-*"))


def test_cluster_has_two_nodes_with_their_resources(cluster):
    _, address, _ = cluster
    nodes = _nodes(address)
    assert len(nodes) == 2
    assert sorted(r.get("CPU") for r in nodes.values()) == [1.0, 2.0]
    assert sum("raykd_worker" in r for r in nodes.values()) == 1 and sum("raykd_head" in r for r in nodes.values()) == 1


def test_both_trials_finish_on_the_node_the_resources_name(sweep):
    tmp, address, _, sweep_dir = sweep
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert [r["status"] for r in rows] == ["TERMINATED", "TERMINATED"]
    worker_node = next(node for node, res in _nodes(address).items() if "raykd_worker" in res)
    for trial, results in trial_results(sweep_dir).items():
        assert {r["node_id"] for r in results if "node_id" in r} == {worker_node}, trial
    assert "running 2 trials" in (tmp / "sweep.txt").read_text()


def test_trials_have_sizes_checkpoints_and_a_front(sweep):
    from raykd.students import load_student

    tmp, _, _, sweep_dir = sweep
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert {r["student"] for r in rows} <= {"bilstm", "transformer"}
    for row in rows:
        params = int(row["student_params"])
        assert 0.5 < float(row["metric"]) <= 1 and params > 0 and float(row["latency_ms"]) > 0
        assert float(row["compression_ratio"]) == pytest.approx(22_713_986 / params)
        # the best epoch's checkpoint rebuilds the student without the teacher
        student = load_student(row["checkpoint_dir"])
        assert sum(p.numel() for p in student.parameters()) == params
    front = list(csv.DictReader(open(sweep_dir / "pareto.csv")))
    assert 1 <= len(front) <= 2 and {r["trial_id"] for r in front} <= {r["trial_id"] for r in rows}
    assert (sweep_dir / "pareto.png").stat().st_size > 1000
    output = (tmp / "sweep.txt").read_text()
    assert "finished" in output and "Pareto front" in output


def test_runs_are_on_the_tracking_server(sweep):
    from mlflow.tracking import MlflowClient

    _, _, mlflow_uri, sweep_dir = sweep
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("raykd-cluster")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("raykd.kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 2 and all(c.info.status == "FINISHED" for c in children)
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert {c.data.tags["raykd.trial_id"] for c in children} == {r["trial_id"] for r in rows}
    assert all(c.info.artifact_uri.startswith("mlflow-artifacts:") for c in children)  # the server stores them
    by_id = {r["trial_id"]: r for r in rows}
    for child in children:
        row, metrics = by_id[child.data.tags["raykd.trial_id"]], child.data.metrics
        assert {"metric", "accuracy", "best_epoch", "student_params", "compression_ratio", "latency_ms"} <= set(metrics)
        # the headline figures are the report's: the selected epoch's, whose checkpoint the trial keeps
        assert metrics["metric"] == pytest.approx(float(row["metric"]), abs=1e-12)
        assert metrics["accuracy"] == pytest.approx(float(row["dev_accuracy"]), abs=1e-12)
        assert metrics["best_epoch"] == int(row["best_epoch"]) and metrics["student_params"] == int(row["student_params"])
        assert child.info.run_name == f"vanilla-{row['student']}-{int(row['student_params']) / 1e6:.2f}M-{row['trial_id']}"
        assert "student" in child.data.params and "vanilla/kd_loss" in child.data.params
        # per-epoch curves under their own names, the epoch as step; each headline figure logged once
        curve = client.get_metric_history(child.info.run_id, "epoch/accuracy")
        assert sorted(m.step for m in curve) == [1, 2]
        assert max(m.value for m in curve) == pytest.approx(metrics["accuracy"])
        assert len(client.get_metric_history(child.info.run_id, "metric")) == 1
        assert [m.step for m in client.get_metric_history(child.info.run_id, "epoch/train_loss")] in ([1, 2], [2, 1])
        assert not {"worker_pid", "start_epoch", "epoch/worker_pid"} & set(metrics)  # bookkeeping is tags
        assert child.data.tags["raykd.start_epoch"] == "0" and child.data.tags["raykd.worker_pid"].isdigit()
        files = {a.path for a in client.list_artifacts(child.info.run_id, "student")}
        assert "student/student.safetensors" in files and "student/student.json" in files
        assert not any(f.startswith("student/train_state") for f in files)  # optimiser state stays in storage
    parent_files = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"trials.csv", "pareto.csv", "pareto.png", "pareto.html", "space.yaml"} <= parent_files
    assert "hypervolume" in parents[0].data.metrics
    assert not (sweep_dir.parent / "mlflow.db").exists()  # nothing went to a local store
    # Optuna's study names its objectives and links each trial to its raykd trial and MLflow run
    import optuna

    study = optuna.load_study(study_name=sweep_dir.name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")
    assert study.metric_names == ["best_metric", "student_params"]
    linked = {t.user_attrs["raykd_trial_id"]: t.user_attrs["mlflow_run_id"] for t in study.trials}
    assert linked == {c.data.tags["raykd.trial_id"]: c.info.run_id for c in children}


def test_report_re_renders_a_finished_sweep(sweep):
    from click.testing import CliRunner

    from raykd.cli import main

    *_, sweep_dir = sweep
    before = (sweep_dir / "pareto.csv").read_text()
    (sweep_dir / "pareto.csv").unlink()
    result = CliRunner().invoke(main, ["report", str(sweep_dir)])  # reads the server's runs again
    assert result.exit_code == 0, result.output
    assert (sweep_dir / "pareto.csv").read_text() == before  # MLflow run ids included
    assert "2 trials finished, 0 failed" in result.output
    offline = CliRunner().invoke(main, ["report", str(sweep_dir), "--no-mlflow"])
    assert offline.exit_code == 0 and "2 trials finished" in offline.output


def test_unreachable_tracking_server_stops_before_anything_runs(tmp_path):
    from click.testing import CliRunner

    from raykd.cli import main

    (closed,) = _free_ports(1)
    space = write_space(tmp_path / "s.yaml", tiny_space_raw())
    result = CliRunner().invoke(main, ["sweep", "--space", str(space), "--storage", str(tmp_path / "runs"),
                                       "--mlflow-uri", f"http://127.0.0.1:{closed}"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1 and "is not reachable" in lines[0] and "drop --mlflow-uri" in lines[0]
    assert not (tmp_path / "runs").exists()
    assert REPO  # the CLI ran from the repository's package
