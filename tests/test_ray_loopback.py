"""The local Ray instance raykd starts listens on loopback only (raykd/sweep/local_ray.py).

Ray 2.60 on Linux binds its GCS, raylet, workers and agents to all interfaces by default;
:func:`start_local_ray` starts the node on the loopback address instead. The test lists the
instance's listening sockets (psutil, owned by the driver and the processes Ray started) and
requires every one to be on 127.0.0.1 / ::1, and the core ones to be there at all. A trial's
process-group store (raykd.trial.loopback) is checked by tests/test_ddp.py, during a real 2-worker run.
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
def test_every_socket_of_the_local_instance_is_on_loopback(monkeypatch):
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
    finally:
        ray.shutdown()
    exposed = [s for s in sockets if not is_loopback(s.ip)]
    assert not exposed, f"listening beyond loopback: {exposed}"
    names = {s.name for s in sockets}
    assert {"gcs_server", "raylet"} <= names, names  # the listing really sees the instance...
    assert {s.pid for s in sockets} >= {os.getpid(), worker_pid}  # ...the driver and the task's worker
    assert len(sockets) >= 8, sockets  # GCS, raylet x2, driver, worker(s), agents, dashboard

