"""The local Ray instance raykd starts listens on loopback only (raykd/sweep/local_ray.py).

Ray 2.60 on Linux binds its GCS, raylet, workers and agents to all interfaces by default;
:func:`start_local_ray` starts the node on the loopback address instead. The test lists the
instance's listening sockets (psutil, owned by the driver and the processes Ray started) and
requires every one to be on 127.0.0.1 / ::1, and the core ones to be there at all.
"""

import logging
import os

import pytest

from raykd.sweep.local_ray import LOOPBACK_SWITCH, is_loopback, listening_addresses, start_local_ray


def test_is_loopback_knows_ipv4_ipv6_and_mapped_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.3.0.1", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.0.2.2", "::ffff:192.0.2.2", "fe80::1%eth0"]))


@pytest.mark.parametrize("kwargs", [{"address": "auto"}, {"dashboard_host": "0.0.0.0"},
                                    {"_node_ip_address": "192.0.2.2"}])
def test_start_local_ray_refuses_what_would_expose_or_skip_the_instance(kwargs):
    with pytest.raises(ValueError):
        start_local_ray(1, **kwargs)


@pytest.mark.ray
def test_every_socket_of_the_local_instance_is_on_loopback(monkeypatch, tmp_path):
    import ray

    monkeypatch.delenv(LOOPBACK_SWITCH, raising=False)
    monkeypatch.delenv("RAYKD_TEST_SETTING", raising=False)
    monkeypatch.setenv("RAYKD_TEST_KEPT", "user")
    start_local_ray(2, env={"RAYKD_TEST_SETTING": "1", "RAYKD_TEST_KEPT": "ours"},
                    logging_level=logging.WARNING, log_to_driver=False)
    try:
        @ray.remote
        def worker_view():
            return os.getpid(), os.environ.get("RAYKD_TEST_SETTING"), os.environ.get("RAYKD_TEST_KEPT")

        worker_pid, setting, kept = ray.get(worker_view.remote())
        assert (setting, kept) == ("1", "user")  # env reaches the workers; the user's value wins
        assert "RAYKD_TEST_SETTING" not in os.environ  # and is removed again from the driver
        assert ray.util.get_node_ip_address() in ("127.0.0.1", "::1")
        sockets = listening_addresses()
        training = _train_two_workers(tmp_path)
    finally:
        ray.shutdown()
    # a trial's torch process group (raykd's LoopbackTorchConfig): its store listens on loopback too
    assert training["sum"] == 3.0  # the two ranks' all-reduce went through the group
    store = [s for s in training["listening"] if s[1] == training["port"]]
    assert store, training  # rank 0 hosts the store...
    assert all(is_loopback(ip) for ip, _ in training["listening"]), training  # ...and listens on loopback only
    exposed = [s for s in sockets if not is_loopback(s.ip)]
    assert not exposed, f"listening beyond loopback: {exposed}"
    names = {s.name for s in sockets}
    assert {"gcs_server", "raylet"} <= names, names  # the listing really sees the instance...
    assert {s.pid for s in sockets} >= {os.getpid(), worker_pid}  # ...the driver and the task's worker
    assert len(sockets) >= 8, sockets  # GCS, raylet x2, driver, worker(s), agents, dashboard


def _train_two_workers(storage) -> dict:
    """A real 2-worker Ray Train run with raykd's LoopbackTorchConfig; rank 0 returns its listening sockets."""
    import ray.train
    from ray.train.torch import TorchTrainer

    from raykd.trial.loopback import LoopbackTorchConfig

    def train_fn(config):
        import psutil
        import torch
        import torch.distributed as dist

        rank = ray.train.get_context().get_world_rank()
        value = torch.tensor([float(rank + 1)])
        dist.all_reduce(value)
        listening = [(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        return {"sum": float(value.item()), "listening": listening, "port": int(os.environ["MASTER_PORT"])}

    trainer = TorchTrainer(train_fn, torch_config=LoopbackTorchConfig(),
                           scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                           run_config=ray.train.RunConfig(name="loopback", storage_path=str(storage)))
    return trainer.fit().return_value  # rank 0's
