"""Resources a local Ray instance can never provide are refused before anything starts."""

import pytest
import yaml
from click.testing import CliRunner

from conftest import tiny_space_raw
from raykd.cli import main


@pytest.mark.parametrize("resources, fragment", [
    ({"worker_resources": {"raykd_gpu": 1}}, "asks for raykd_gpu, which a local Ray instance does not have"),
    ({"gpus_per_worker": 0.5}, "this machine has no CUDA GPU"),
])
def test_resources_a_local_instance_cannot_schedule(tmp_path, resources, fragment):
    import torch

    if "gpus_per_worker" in resources and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    raw = tiny_space_raw()
    raw["resources"].update(resources)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(main, ["sweep", "--space", str(space), "--storage", str(tmp_path / "runs")])
    assert result.exit_code == 2 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_validate_prints_what_each_trial_reserves(tmp_path):
    raw = tiny_space_raw({"resources.worker_resources": {"raykd_cpu": 1}, "resources.num_workers": 2})
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(raw))
    # custom resources exist only on a cluster: a local instance refuses them (test_local_resources_refused)
    result = CliRunner().invoke(main, ["validate", "--space", str(space), "--address", "127.0.0.1:6379"])
    assert result.exit_code == 0, result.output
    assert "each trial: 2 Ray Train worker(s) x 1 CPU, 1 raykd_cpu (DDP)" in result.output
    assert "the Ray cluster at 127.0.0.1:6379 (resources checked when the sweep attaches)" in result.output


def test_a_cluster_too_small_for_one_trial_is_named_but_not_refused():
    """With --address an autoscaler may add nodes, so the sweep says what is short instead of stopping."""
    from raykd.config import parse_space
    from raykd.sweep.run import _warn_if_too_small

    space = parse_space(tiny_space_raw({"resources.num_workers": 2, "resources.gpus_per_worker": 1,
                                        "resources.worker_resources": {"gpu_a100": 1}}))
    lines = []
    _warn_if_too_small({"CPU": 8.0, "GPU": 1.0}, space, lines.append)
    assert lines == ["warning: a trial needs 2 GPU (the cluster has 1), 2 gpu_a100 (the cluster has 0); trials wait "
                     "until the cluster's autoscaler adds nodes that have them"]
    lines.clear()
    _warn_if_too_small({"CPU": 8.0, "GPU": 2.0, "gpu_a100": 2.0}, space, lines.append)
    assert lines == []
