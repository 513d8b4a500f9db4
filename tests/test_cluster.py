"""A real three-node Ray cluster on 127.0.0.1 and a real MLflow tracking server.

The head (``ray start --head``, no CPUs for work, custom resource ``raykd_head``) and two worker
nodes (``ray start --address``) run as separate raylets with their own ports: a CPU node (2 CPUs,
custom resource ``raykd_worker``) and a "GPU" node (2 CPUs, ``--num-gpus 1``: Ray schedules GPU
requests on it although torch sees no CUDA there, so the code must fall back to the CPU);
``mlflow server`` runs with a SQLite backend. Both sweeps attach with ``--address``:

* a 2-trial sweep that tracks to the server with ``--mlflow-uri``; the space asks for one
  ``raykd_worker`` per Train worker, so every trial must train on the CPU node. It is also the
  suite's check of an ordinary sweep's output (trials, the front, the checkpoints, each trial's
  MLflow run, ``raykd report``); a sweep on a local instance is covered by the fault, resume,
  method and multi-task sweeps;
* a two-task sweep with every heavy stage: a teacher fine-tuned by the teacher stage, soft targets
  by Ray Data teacher replicas, a Tang transfer set built by a Ray task. Each must run on a worker
  node (never the driver or the head), ask for the GPU the stages ask for, and land on the GPU node.

Every node and the server are stopped at the end, also when a test fails.
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

from conftest import (BASE, GLUE, REPO, TEACHER, http_healthy, raykd_process, storage_with_cache, tiny_space_raw,
                      trial_results, wait_for, write_space)

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
    gcs, dashboard, client, *agents = _free_ports(16)
    common = ["--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    started = []
    try:
        mlflow_port = agents[12]  # the server starts while the Ray nodes do
        started.append(_start([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(mlflow_port),
                               "--backend-store-uri", f"sqlite:///{tmp / 'mlflow.db'}",
                               "--artifacts-destination", str(tmp / "mlartifacts")], tmp / "mlflow.txt"))

        def node_ports(i: int) -> list[str]:
            return [f"--dashboard-agent-listen-port={agents[4 * i]}", f"--dashboard-agent-grpc-port={agents[4 * i + 1]}",
                    f"--metrics-export-port={agents[4 * i + 2]}", f"--runtime-env-agent-port={agents[4 * i + 3]}"]

        head = _start([str(BIN / "ray"), "start", "--head", f"--port={gcs}", f"--dashboard-port={dashboard}",
                       "--dashboard-host=127.0.0.1", f"--ray-client-server-port={client}", "--num-cpus=0",
                       '--resources={"raykd_head": 1}', *node_ports(0), *common], tmp / "head.txt")
        started.append(head)
        assert head.wait(timeout=120) == 0, (tmp / "head.txt").read_text()
        for i, extra in ((1, ["--num-cpus=2", '--resources={"raykd_worker": 2}']), (2, ["--num-cpus=2", "--num-gpus=1"])):
            node = _start([str(BIN / "ray"), "start", f"--address=127.0.0.1:{gcs}", *extra, *node_ports(i), *common],
                          tmp / f"node{i}.txt")
            started.append(node)
            assert node.wait(timeout=120) == 0, (tmp / f"node{i}.txt").read_text()
        wait_for(lambda: http_healthy(f"http://127.0.0.1:{mlflow_port}"), 90, "the MLflow server")
        yield tmp, f"127.0.0.1:{gcs}", f"http://127.0.0.1:{mlflow_port}", f"http://127.0.0.1:{dashboard}"
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
    tmp, address, mlflow_uri, _ = cluster
    raw = tiny_space_raw({"name": "cluster", "resources.worker_resources": {"raykd_worker": 1}})
    space = write_space(tmp / "cluster.yaml", raw)
    storage_with_cache(tmp / "runs", tiny_cache)
    started = time.monotonic()
    process = raykd_process(["sweep", "--space", str(space), "--storage", str(tmp / "runs"), "--address", address, "--no-estimate",
                             "--mlflow-uri", mlflow_uri], tmp / "sweep.txt")
    try:
        assert process.wait(timeout=500) == 0, (tmp / "sweep.txt").read_text()[-3000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    print(f"2-trial sweep on the 2-node cluster: {time.monotonic() - started:.0f} s")
    return tmp, address, mlflow_uri, next((tmp / "runs").glob("cluster-*"))


def test_cluster_has_three_nodes_with_their_resources(cluster):
    _, address, _, _ = cluster
    nodes = _nodes(address)
    assert len(nodes) == 3
    assert sorted(r.get("CPU", 0.0) for r in nodes.values()) == [0.0, 2.0, 2.0]
    assert sum("raykd_worker" in r for r in nodes.values()) == 1 and sum("raykd_head" in r for r in nodes.values()) == 1
    assert [r.get("GPU", 0.0) for r in nodes.values()].count(1.0) == 1


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


def _stage_space(name: str) -> dict:
    """Two tasks: SST-2 with the ready teacher, STS-B with one the teacher stage fine-tunes; Tang-augmented KD."""
    return {
        "name": name, "tasks": ["sst2", "stsb"],
        "data": {"glue_dir": str(GLUE), "max_length": 32, "train_limit": 64, "dev_limit": 48},
        # 64 pairs and one epoch make a weak STS-B teacher: this test is about where the stages run
        "teacher": {"paths": {"sst2": str(TEACHER)}, "base": str(BASE), "fine_tune": True, "fine_tune_epochs": 1,
                    "fine_tune_batch_size": 16, "allow_weak": True},
        "methods": {"vanilla": {"kd_loss": "mse", "augment": "tang", "n_iter": 2},
                    "multitask": {"kd_loss": "mse", "finetune_epochs": 0}},
        "students": {"bilstm": {"embedding_dim": 16, "hidden_dim": 16, "mlp_dim": 16, "pooling": "attention",
                                "embedding_init": "random"}},
        "training": {"lr": 3.0e-3, "epochs": 1, "batch_size": 16},
        "budget": {"num_samples": 2, "max_concurrent": 2},
        "resources": {"num_workers": 1, "cpus_per_worker": 1, "worker_resources": {"raykd_worker": 1}},
        # the teacher and transfer-set stages ask for a GPU by default on a cluster with GPUs; soft targets say so
        "stages": {"soft_targets": {"gpus": 1, "cpus": 1, "batch_size": 32}},
        "seed": 0,
    }


@pytest.fixture(scope="module")
def stage_sweep(cluster, sweep):  # after the first sweep: one sweep at a time on the cluster
    tmp, address, _, dashboard = cluster
    space = write_space(tmp / "stages.yaml", _stage_space("stages"))
    storage = tmp / "stage-runs"
    started = time.monotonic()
    process = raykd_process(["sweep", "--space", str(space), "--storage", str(storage), "--address", address],
                            tmp / "stages.txt")
    try:
        assert process.wait(timeout=600) == 0, (tmp / "stages.txt").read_text()[-4000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    print(f"two-task sweep with every heavy stage on the 3-node cluster: {time.monotonic() - started:.0f} s")
    return tmp, address, dashboard, storage, next(storage.glob("stages-*"))


def _by_name(dashboard: str, kind: str, name: str) -> list:
    from ray.util.state import list_actors, list_tasks

    lister = list_tasks if kind == "task" else list_actors
    key = "func_or_class_name" if kind == "task" else "class_name"
    return [r for r in lister(address=dashboard, limit=10_000, detail=True) if name in str(getattr(r, key, ""))]


def test_every_heavy_stage_runs_on_the_gpu_node_it_asks_for(stage_sweep):
    tmp, address, dashboard, storage, sweep_dir = stage_sweep
    nodes = _nodes(address)
    gpu_node = next(n for n, r in nodes.items() if r.get("GPU"))
    cpu_node = next(n for n, r in nodes.items() if "raykd_worker" in r)
    cache = storage / "cache"
    # teacher stage: one Ray task, asking for a GPU, ran on the GPU node and fell back to the CPU there
    (card,) = [json.loads(p.read_text()) for p in (cache / "teachers").glob("*/training_card.json")]
    assert card["task"] == "stsb" and card["node"] == gpu_node and card["device"] == "cpu"
    (task,) = _by_name(dashboard, "task", "fine_tune_into")
    assert task.required_resources.get("GPU") == 1 and task.node_id == gpu_node
    # soft targets: Ray Data teacher replicas (actors) on the GPU node, one GPU each; both tasks' training splits
    runs = [json.loads(line) for line in (cache / "teacher_outputs" / "soft_targets.log").read_text().splitlines()]
    assert sorted(r["split"] for r in runs) == ["train", "train"]
    assert all(r["nodes"] == [gpu_node] and r["devices"] == ["cpu"] and r["rows"] == 64 for r in runs)
    replicas = _by_name(dashboard, "actor", "TeacherReplica")
    assert replicas and all(a.required_resources.get("GPU") == 1 and a.node_id == gpu_node for a in replicas)
    # the Tang transfer set: a Ray task with a GPU on the GPU node; the trial that needed it waited for it
    built = [json.loads(p.read_text()) for p in (cache / "transfer_sets").glob("*/built_on.json")]
    assert built and all(b["node"] == gpu_node and b["device"] == "cpu" for b in built)
    builds = _by_name(dashboard, "task", "build_one")
    assert builds and all(t.required_resources.get("GPU") == 1 and t.node_id == gpu_node for t in builds)
    # the trials trained on the CPU node the space names, and the sweep finished
    rows = list(csv.DictReader(open(sweep_dir / "trials.csv")))
    assert sorted(r["method"] for r in rows) == ["multitask", "vanilla"] and {r["status"] for r in rows} == {"TERMINATED"}
    workers = _by_name(dashboard, "actor", "RayTrainWorker")  # every trial's Train workers, both sweeps'
    assert len(workers) >= 4 and {a.node_id for a in workers} == {cpu_node}
    output = (tmp / "stages.txt").read_text()
    assert "teacher replica(s) of 1 GPU, 1 CPU" in output and "fine-tuning 1 teacher(s)" in output
