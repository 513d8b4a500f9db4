"""A local Ray instance that only this machine can reach: every Ray socket on 127.0.0.1.

On Linux, Ray 2.60 gives a node started by ``ray.init(address="local")`` the machine's
routable address (``services.get_node_ip_address`` -> ``node_ip_address_from_perspective``),
and its servers then listen on all interfaces: the GCS, the raylet (node manager and object
manager), every worker's and the driver's gRPC server, the dashboard agent, the runtime-env
agent, and the autoscaler's and dashboard's metrics servers. Each of those binds to loopback
instead when the node's IP address is a loopback address (the C++ gRPC servers compare it with
``127.0.0.1``; the Python ones call ``is_localhost``). Ray already makes that choice on macOS and
Windows, where ``ray_constants.ENABLE_RAY_CLUSTER`` is false; :func:`start_local_ray` makes it
for the one ``ray.init`` call that starts raykd's own instance.

One listener is not Ray's: the ``torch.distributed`` TCPStore that Ray Train's rank-0 worker
opens for a trial's process group (PyTorch's c10d server binds ``::``/``0.0.0.0`` whatever
``MASTER_ADDR`` is). Trials on this instance use :class:`~raykd.trial.loopback.LoopbackTorchConfig`,
which binds that store's socket to 127.0.0.1 as well.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = ["LOOPBACK_SWITCH", "ListeningSocket", "is_loopback", "listening_addresses", "start_local_ray"]

LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's own switch (``ray/_private/ray_constants.py``) between a loopback-only node (false) and a
node other machines can join (true); a value the user sets wins over :func:`start_local_ray`."""


@dataclass(frozen=True)
class ListeningSocket:
    """A TCP socket in LISTEN state owned by a process of the local Ray instance.

    Attributes:
        pid: the owning process.
        name: its process name (``gcs_server``, ``raylet``, ``ray::IDLE``, ``python``, ...).
        ip: the bound address, as the kernel reports it (``127.0.0.1``, ``::ffff:127.0.0.1``, ``::``).
        port: the bound port.
    """

    pid: int
    name: str
    ip: str
    port: int


def is_loopback(ip: str) -> bool:
    """Whether ``ip`` is a loopback address (``127.0.0.0/8``, ``::1``, or IPv4-mapped ``::ffff:127.x``)."""
    address = ipaddress.ip_address(ip.split("%")[0])
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def start_local_ray(num_cpus: int, env: Mapping[str, str] | None = None, **init_kwargs: Any) -> None:
    """Start a fresh local Ray instance (``ray.init(address="local")``) bound to loopback.

    The node's IP address is the loopback address, so the GCS, the raylet, the object manager,
    every worker's gRPC server, the dashboard (``dashboard_host`` stays Ray's ``127.0.0.1``
    default), the dashboard agent, the runtime-env agent and the metrics servers listen on
    ``127.0.0.1`` only: nothing on the network can reach the instance or submit work to it.
    Ray decides that from ``ray_constants.ENABLE_RAY_CLUSTER``, read from
    :data:`LOOPBACK_SWITCH` when ``ray`` is first imported (usually long before this call), so
    the value is set to false for the duration of ``ray.init`` and restored afterwards.

    Nothing the user's environment sets is overridden: when :data:`LOOPBACK_SWITCH` is set,
    Ray's own reading of it decides (``1`` gives a node that binds all interfaces, as
    ``ray.init`` does by default on Linux); a variable of ``env`` that is already set keeps
    its value. The others are set only around ``ray.init`` (the raylet and GCS it starts, and
    so every worker, inherit them) and removed again afterwards.

    Args:
        num_cpus: logical CPUs the instance offers.
        env: environment variables for the instance's processes (for example Ray Train
            settings), set only where the environment does not set them already.
        **init_kwargs: passed on to ``ray.init`` (``logging_level``, ``log_to_driver``, ...).

    Raises:
        RuntimeError: Ray is already initialised in this process.
        ValueError: ``init_kwargs`` names ``address`` (this always starts a new local
            instance) or a non-loopback ``dashboard_host`` / ``_node_ip_address``.
    """
    import ray

    if ray.is_initialized():
        raise RuntimeError("Ray is already initialised in this process; call ray.shutdown() first")
    if "address" in init_kwargs:
        raise ValueError("start_local_ray always starts a new local instance; use ray.init(address=...) "
                         "to attach to a running cluster")
    for key in ("dashboard_host", "_node_ip_address"):
        if init_kwargs.get(key) is not None and not _names_loopback(init_kwargs[key]):
            raise ValueError(f"{key}={init_kwargs[key]!r} would expose the local instance; "
                             "leave it unset or use 127.0.0.1")
    with _environment(env or {}), _loopback_node():
        ray.init(address="local", num_cpus=num_cpus, **init_kwargs)


def listening_addresses() -> list[ListeningSocket]:
    """The listening TCP sockets of the local Ray instance this process started, by pid and port.

    The instance's processes are this driver, the processes Ray started for its node (GCS,
    raylet, dashboard, monitors) and all their descendants (workers, agents, dashboard
    modules); another Ray instance on the same machine is not included.

    Raises:
        RuntimeError: Ray is not initialised, or this process attached to an instance it did not
            start (its processes are not ours to list).
    """
    import ray

    if not ray.is_initialized():
        raise RuntimeError("Ray is not initialised")
    import psutil  # a dependency of Ray; importing ray puts its bundled copy on sys.path

    node = ray._private.worker.global_worker.node
    roots = [info.process.pid for infos in node.all_processes.values() for info in infos if info.process]
    if not roots:
        raise RuntimeError("this process did not start the Ray instance it is connected to")
    processes = {os.getpid(): psutil.Process()}
    for pid in roots:
        try:
            root = psutil.Process(pid)
            processes.update({p.pid: p for p in [root, *root.children(recursive=True)]})
        except psutil.NoSuchProcess:
            continue
    found = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in processes:
            found.append(ListeningSocket(conn.pid, _name(processes[conn.pid]), conn.laddr.ip, conn.laddr.port))
    return sorted(found, key=lambda s: (s.name, s.pid, s.port))


def _names_loopback(host: str) -> bool:
    return host == "localhost" or is_loopback(host)


def _name(process) -> str:
    import psutil

    try:
        return process.name()
    except psutil.Error:
        return "?"


@contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Set the variables the environment does not set yet; remove them again on exit."""
    added = {name: str(value) for name, value in variables.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@contextmanager
def _loopback_node() -> Iterator[None]:
    """Make Ray pick the loopback address for a node started now (unless the user chose otherwise).

    ``services.get_node_ip_address`` returns ``get_localhost_ip()`` when
    ``ray_constants.ENABLE_RAY_CLUSTER`` is false, and ``ray.init`` gives that address to every
    process it starts (``--node-ip-address``), which then bind to it.
    """
    if LOOPBACK_SWITCH in os.environ:
        yield
        return
    from ray._private import ray_constants

    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before
