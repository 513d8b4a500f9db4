"""The cluster definitions under cluster/: they cannot be launched here, so check them by construction.

Fast and offline: parse every YAML file, check the Ray cluster-launcher config against the schema of
the installed Ray (ray/autoscaler/ray-schema.json) and raykd's own requirements (head without trials,
dashboard on loopback, token auth, pinned torch before raykd, shared storage, CPU and GPU groups),
check the KubeRay manifests (ray.io/v1, rayVersion, groups, GPU limit, one shared volume at one path,
no public dashboard Service, a RayJob that runs `raykd sweep --address auto` with --storage on the
shared mount), and that cluster/README.md covers each file and the commands it needs.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
AWS = CLUSTER / "aws.yaml"
RAYCLUSTER = CLUSTER / "kuberay" / "raycluster.yaml"
RAYJOB = CLUSTER / "kuberay" / "rayjob.yaml"
README = CLUSTER / "README.md"

RAY_VERSION = "2.60.0"
PUBLIC_SERVICE_TYPES = {"LoadBalancer", "NodePort"}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _only(path: Path, kind: str) -> dict:
    found = [d for d in _docs(path) if d.get("kind") == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def aws() -> dict:
    return yaml.safe_load(AWS.read_text())


@pytest.fixture(scope="module")
def raycluster() -> dict:
    return _only(RAYCLUSTER, "RayCluster")


@pytest.fixture(scope="module")
def rayjob() -> dict:
    return _only(RAYJOB, "RayJob")


def _cluster_specs(raycluster: dict, rayjob: dict) -> dict[str, dict]:
    return {"raycluster.yaml": raycluster["spec"], "rayjob.yaml": rayjob["spec"]["rayClusterSpec"]}


# --------------------------------------------------------------------------- every file


def test_every_yaml_under_cluster_parses():
    files = sorted(CLUSTER.rglob("*.yaml")) + sorted(CLUSTER.rglob("*.yml"))
    assert {AWS, RAYCLUSTER, RAYJOB} <= set(files)
    for path in files:
        docs = _docs(path)
        assert docs, f"{path} has no YAML document"
        assert all(isinstance(d, dict) for d in docs), f"{path}: every document must be a mapping"


# --------------------------------------------------------------------------- cluster/aws.yaml


def _joined(commands: list[str]) -> str:
    return "\n".join(commands)


def _head_type(aws: dict) -> dict:
    return aws["available_node_types"][aws["head_node_type"]]


def _worker_types(aws: dict) -> dict[str, dict]:
    return {name: t for name, t in aws["available_node_types"].items() if name != aws["head_node_type"]}


def test_aws_has_the_launcher_top_level_keys(aws):
    assert isinstance(aws["cluster_name"], str) and aws["cluster_name"]
    assert isinstance(aws["max_workers"], int) and aws["max_workers"] > 0
    provider = aws["provider"]
    assert provider["type"] == "aws"
    assert provider["region"]
    assert isinstance(provider["cache_stopped_nodes"], bool)
    assert aws["auth"]["ssh_user"]
    assert isinstance(aws["available_node_types"], dict) and aws["available_node_types"]
    assert aws["head_node_type"] in aws["available_node_types"]
    for key in ("setup_commands", "head_start_ray_commands", "worker_start_ray_commands", "file_mounts"):
        assert aws[key], f"aws.yaml: {key} is empty"


def test_aws_validates_against_the_installed_ray_schema(aws):
    """What `ray up` does first: fill in the provider defaults, then validate against ray-schema.json."""
    pytest.importorskip("jsonschema")
    util = pytest.importorskip("ray.autoscaler._private.util")
    util.validate_config(util.prepare_config(copy.deepcopy(aws)))


def test_aws_worker_types_have_min_and_max_workers(aws):
    workers = _worker_types(aws)
    assert len(workers) >= 2
    for name, node_type in workers.items():
        low, high = node_type["min_workers"], node_type["max_workers"]
        assert isinstance(low, int) and isinstance(high, int), name
        assert 0 <= low <= high <= aws["max_workers"], name
        assert node_type["node_config"]["InstanceType"], name
    assert sum(t["min_workers"] for t in workers.values()) <= aws["max_workers"]


def test_aws_head_takes_no_trials(aws):
    head = _head_type(aws)
    start = _joined(aws["head_start_ray_commands"])
    assert head.get("resources", {}).get("CPU") == 0 or "--num-cpus=0" in start
    assert not {"GPU", "raykd_cpu", "raykd_gpu"} & set(head.get("resources", {}))


def test_aws_dashboard_is_bound_to_loopback_and_token_auth_is_on(aws):
    head_start = _joined(aws["head_start_ray_commands"])
    assert "ray start --head" in head_start
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in head_start
    assert "RAY_AUTH_MODE=token" in head_start
    assert "RAY_AUTH_MODE=token" in _joined(aws["worker_start_ray_commands"])
    assert "~/.ray/auth_token" in aws["file_mounts"]
    # nothing opens the dashboard, GCS or client ports to the outside
    for rule in aws["provider"].get("security_group", {}).get("IpPermissions", []):
        assert not rule.get("FromPort", 0) <= 8265 <= rule.get("ToPort", -1), rule


def test_aws_has_a_gpu_group_and_a_cpu_group_with_custom_resources(aws):
    workers = _worker_types(aws)
    gpu = [t for t in workers.values() if t.get("resources", {}).get("GPU", 0) >= 1]
    cpu = [t for t in workers.values() if not t.get("resources", {}).get("GPU")]
    assert gpu and cpu
    assert all(t["resources"].get("raykd_gpu", 0) >= 1 for t in gpu)
    assert all(t["resources"].get("raykd_cpu", 0) >= 1 for t in cpu)
    assert all(t["node_config"]["InstanceType"].startswith(("g", "p")) for t in gpu)


def test_aws_setup_installs_pinned_torch_then_raykd(aws):
    commands = aws["setup_commands"]
    torch_at = [i for i, c in enumerate(commands) if re.search(r"pip install .*torch==\d+\.\d+\.\d+", c)]
    for command in commands:  # every torch requirement (CPU and CUDA branches) is pinned
        for match in re.finditer(r"(?<![\w./-])torch(==\d+\.\d+\.\d+)?", command):
            assert match.group(1), f"unpinned torch in: {command}"
    raykd_at = [i for i, c in enumerate(commands) if re.search(r"pip install .*(~/raykd|raykd\b)", c)]
    assert torch_at, "no pinned torch install (torch==X.Y.Z)"
    assert raykd_at, "no raykd install"
    assert max(torch_at) < min(raykd_at), "torch must be installed before raykd"
    assert f"ray[tune,train,default]=={RAY_VERSION}" in _joined(commands)
    assert aws["file_mounts"]["~/raykd"] == "."


def test_aws_mounts_shared_storage_on_every_node(aws):
    node_commands = _joined(aws.get("initialization_commands", []) + aws["setup_commands"])
    assert re.search(r"mount -t nfs4? .* /mnt/raykd\b", node_commands), "no NFS/EFS mount at /mnt/raykd"
    docker = aws.get("docker")
    if docker:  # the host mount must reach the container at the same path
        assert "-v /mnt/raykd:/mnt/raykd" in docker.get("run_options", [])


def test_aws_docker_images_and_shm(aws):
    docker = aws["docker"]
    images = [docker.get("image"), docker.get("head_image")] + [
        t.get("docker", {}).get("worker_image") for t in _worker_types(aws).values()]
    for image in filter(None, images):
        assert image.startswith(f"rayproject/ray:{RAY_VERSION}-py311"), image
    assert any("--shm-size" in o for o in docker.get("head_run_options", []) + docker.get("run_options", []))
    for name, node_type in _worker_types(aws).items():
        options = node_type.get("docker", {}).get("worker_run_options", []) + docker.get("run_options", [])
        assert any("--shm-size" in o for o in options), name
    gpu_type = next(t for t in _worker_types(aws).values() if t["resources"].get("GPU"))
    assert gpu_type["docker"]["worker_image"].endswith("-gpu")


# --------------------------------------------------------------------------- KubeRay


def _groups(spec: dict) -> dict[str, dict]:
    groups = {"head": spec["headGroupSpec"]}
    groups.update({g["groupName"]: g for g in spec["workerGroupSpecs"]})
    return groups


def _ray_container(group: dict) -> dict:
    return group["template"]["spec"]["containers"][0]


def _custom_resources(group: dict) -> dict:
    """KubeRay's rayStartParams.resources format: '"{\\"name\\": 1}"' (as the Ray autoscaler parses it)."""
    raw = group.get("rayStartParams", {}).get("resources")
    if raw is None:
        return {}
    return json.loads(raw[1:-1].replace("\\", ""))


def _gpu_limit(group: dict) -> int:
    return int(_ray_container(group).get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))


def _shared_mounts(group: dict) -> dict[str, str]:
    """claimName -> mountPath of the group's PVC volumes, in its Ray container."""
    pod = group["template"]["spec"]
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in pod.get("volumes", []) if "persistentVolumeClaim" in v}
    return {claims[m["name"]]: m["mountPath"] for m in _ray_container(group).get("volumeMounts", [])
            if m["name"] in claims}


def test_kuberay_api_version_kind_and_ray_version(raycluster, rayjob):
    assert raycluster["apiVersion"] == "ray.io/v1" and raycluster["kind"] == "RayCluster"
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    for name, spec in _cluster_specs(raycluster, rayjob).items():
        assert spec["rayVersion"] == RAY_VERSION, name
        for group in _groups(spec).values():
            assert RAY_VERSION in _ray_container(group)["image"], f"{name}: image not at Ray {RAY_VERSION}"


def test_kuberay_head_and_two_worker_groups(raycluster, rayjob):
    for name, spec in _cluster_specs(raycluster, rayjob).items():
        head = spec["headGroupSpec"]
        assert head["rayStartParams"]["num-cpus"] == "0", f"{name}: trials must stay off the head"
        workers = spec["workerGroupSpecs"]
        assert len(workers) >= 2, name
        for group in workers:
            assert 0 <= group["minReplicas"] <= group["maxReplicas"], group["groupName"]
            assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams are strings"
        gpu = [g for g in workers if _gpu_limit(g) >= 1]
        cpu = [g for g in workers if _gpu_limit(g) == 0]
        assert gpu and cpu, f"{name}: needs a GPU group and a CPU group"
        assert all(_custom_resources(g).get("raykd_gpu", 0) >= 1 for g in gpu)
        assert all(_custom_resources(g).get("raykd_cpu", 0) >= 1 for g in cpu)


def test_kuberay_gpu_limit_is_requested_too(raycluster, rayjob):
    for name, spec in _cluster_specs(raycluster, rayjob).items():
        for group in spec["workerGroupSpecs"]:
            resources = _ray_container(group)["resources"]
            assert resources["requests"]["cpu"] == resources["limits"]["cpu"], group["groupName"]
            gpus = resources["limits"].get("nvidia.com/gpu")
            if gpus is not None:
                assert int(gpus) >= 1
                assert resources["requests"].get("nvidia.com/gpu", gpus) == gpus, f"{name}: GPU request != limit"


def test_kuberay_shared_volume_at_the_same_path_everywhere(raycluster, rayjob):
    for name, spec in _cluster_specs(raycluster, rayjob).items():
        mounts = {group_name: _shared_mounts(g) for group_name, g in _groups(spec).items()}
        assert all(mounts.values()), f"{name}: a group has no shared volume: {mounts}"
        assert len({tuple(sorted(m.items())) for m in mounts.values()}) == 1, f"{name}: differs: {mounts}"
        for group_name, group in _groups(spec).items():
            pod = group["template"]["spec"]
            shm = [v for v in pod["volumes"] if v.get("emptyDir", {}).get("medium") == "Memory"]
            shm_names = {v["name"] for v in shm}
            assert any(m["mountPath"] == "/dev/shm" and m["name"] in shm_names
                       for m in _ray_container(group)["volumeMounts"]), f"{name}/{group_name}: no /dev/shm"


def test_kuberay_dashboard_has_no_public_service(raycluster, rayjob):
    for path in (RAYCLUSTER, RAYJOB):
        for doc in _docs(path):
            assert doc.get("kind") != "Ingress", path.name
            if doc.get("kind") == "Service":
                assert doc.get("spec", {}).get("type", "ClusterIP") not in PUBLIC_SERVICE_TYPES, path.name
    for name, spec in _cluster_specs(raycluster, rayjob).items():
        head = spec["headGroupSpec"]
        assert head.get("serviceType", "ClusterIP") not in PUBLIC_SERVICE_TYPES, name
        assert head.get("headService", {}).get("spec", {}).get("type", "ClusterIP") not in PUBLIC_SERVICE_TYPES
        assert head.get("enableIngress") is not True, name
        for port in _ray_container(head).get("ports", []):
            assert "hostPort" not in port, f"{name}: {port} binds a node port"


def test_kuberay_token_auth(raycluster, rayjob):
    for name, spec in _cluster_specs(raycluster, rayjob).items():
        assert spec["authOptions"]["mode"] == "token", name


def test_rayjob_cluster_spec_matches_raycluster(raycluster, rayjob):
    """rayjob.yaml repeats raycluster.yaml's groups; a change to one must reach the other."""
    mine, theirs = _groups(raycluster["spec"]), _groups(rayjob["spec"]["rayClusterSpec"])
    assert mine.keys() == theirs.keys()
    for name in mine:
        for key in ("rayStartParams", "minReplicas", "maxReplicas"):
            assert mine[name].get(key) == theirs[name].get(key), f"{name}.{key}"
        assert mine[name]["template"]["spec"] == theirs[name]["template"]["spec"], f"{name} pod spec"


def _entrypoint(rayjob: dict) -> list[str]:
    return shlex.split(rayjob["spec"]["entrypoint"])


def _option(tokens: list[str], flag: str) -> str:
    assert flag in tokens, f"entrypoint has no {flag}"
    return tokens[tokens.index(flag) + 1]


def test_rayjob_entrypoint_runs_a_sweep_on_the_shared_mount(rayjob):
    tokens = _entrypoint(rayjob)
    assert tokens[:2] == ["raykd", "sweep"]
    assert _option(tokens, "--address") == "auto"
    (mount,) = set(_shared_mounts(rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]).values())
    assert _option(tokens, "--storage").startswith(mount.rstrip("/") + "/")
    assert _option(tokens, "--space").startswith(mount.rstrip("/") + "/")
    assert _option(tokens, "--mlflow-uri").startswith("http://")


def test_rayjob_entrypoint_parses_with_the_raykd_cli(rayjob):
    """Every option the entrypoint gives exists in `raykd sweep` (parsed by click, not run)."""
    cli = pytest.importorskip("raykd.cli")
    context = cli.sweep.make_context("sweep", _entrypoint(rayjob)[2:])
    assert context.params["address"] == "auto"
    assert any(p.name == "resume_dir" for p in cli.sweep.params), "README documents raykd sweep --resume"


def test_rayjob_lifecycle_and_runtime_env(rayjob):
    spec = rayjob["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    assert isinstance(spec["ttlSecondsAfterFinished"], int) and spec["ttlSecondsAfterFinished"] >= 0
    assert isinstance(spec["activeDeadlineSeconds"], int) and spec["activeDeadlineSeconds"] > 0
    assert spec.get("submissionMode", "K8sJobMode") in {"K8sJobMode", "HTTPMode", "SidecarMode"}
    assert spec.get("backoffLimit", 0) == 0, "a retry would start a new sweep instead of resuming"
    env = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    (mount,) = set(_shared_mounts(spec["rayClusterSpec"]["headGroupSpec"]).values())
    assert env["HF_HOME"].startswith(mount.rstrip("/") + "/")
    assert all(isinstance(v, str) for v in env.values()), "runtime_env env_vars must be strings"


# --------------------------------------------------------------------------- cluster/README.md


def test_readme_covers_each_file_and_command():
    text = README.read_text()
    for name in ("cluster/aws.yaml", "cluster/kuberay/raycluster.yaml", "cluster/kuberay/rayjob.yaml"):
        assert name in text, name
    for command in ("ray start", "ray up", "ray dashboard", "ray down", "ray job submit", "helm install",
                    "kubectl apply", "kubectl port-forward", "raykd sweep --resume", "--address auto",
                    "RAY_AUTH_MODE=token", "--allowed-hosts", "max_concurrent", "gpus_per_worker",
                    "worker_resources"):
        assert command in text, command
    assert "--dashboard-host=0.0.0.0" not in text
