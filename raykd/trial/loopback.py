"""Ray Train's torch process group, rendezvousing on a store that listens on 127.0.0.1 only.

Ray Train (2.60) sets up every trial's ``torch.distributed`` process group with
``init_process_group("env://")``, whose c10d ``TCPStore`` server on rank 0 binds all interfaces
(PyTorch has no bind-address option), so while a trial trains, its rank-0 worker listens on
``::`` even on raykd's loopback-only local instance. :class:`LoopbackTorchConfig` is Ray's
``TorchConfig`` with one change: rank 0 opens the store's listening socket itself, bound to
127.0.0.1, and hands it to ``TCPStore(master_listen_fd=...)``; the other ranks connect to it, and
``init_process_group(store=...)`` takes the store. Backend choice (gloo on CPUs, nccl on GPUs),
the environment variables and shutdown are Ray's own. It is for a single-node instance only (every
worker reaches 127.0.0.1); trials on a cluster (``--address``) keep Ray's default.

It subclasses Ray's private ``_TorchBackend``; ``tests/test_ray_loopback.py`` runs a real trial with
two workers through it and lists their listening sockets.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import ray
from ray.train.torch import TorchConfig
from ray.train.torch.config import _set_torch_distributed_env_vars, _TorchBackend

__all__ = ["LoopbackTorchConfig"]

_LISTENING: dict[str, socket.socket] = {}
"""Rank 0's listening socket, kept open (in that worker process) while its store serves."""


def _open_store_socket() -> int:
    """On rank 0: listen on a free port of 127.0.0.1 for the store; return the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    _LISTENING["store"] = sock
    return sock.getsockname()[1]


def _join_group(backend: str, world_rank: int, world_size: int, port: int, timeout_s: int) -> None:
    """Create this rank's store client (rank 0: the server, on the socket it opened) and join the group."""
    import torch.distributed as dist

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    timeout = timedelta(seconds=timeout_s)
    if world_rank == 0:
        store = dist.TCPStore("127.0.0.1", port, world_size, True, timeout,
                              master_listen_fd=_LISTENING["store"].fileno())
    else:
        store = dist.TCPStore("127.0.0.1", port, world_size, False, timeout)
    dist.init_process_group(backend=backend, store=store, rank=world_rank, world_size=world_size, timeout=timeout)


class _LoopbackBackend(_TorchBackend):
    def on_start(self, worker_group, backend_config: "LoopbackTorchConfig") -> None:
        resources = worker_group.get_resources_per_worker()
        backend = backend_config.backend or ("nccl" if resources.get("GPU", 0) > 0 else "gloo")
        worker_group.execute(_set_torch_distributed_env_vars)
        port = worker_group.execute_single(0, _open_store_socket)
        ray.get([worker_group.execute_single_async(i, _join_group, backend=backend, world_rank=i,
                                                   world_size=len(worker_group), port=port,
                                                   timeout_s=backend_config.timeout_s)
                 for i in range(len(worker_group))])


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """``TorchConfig`` whose process-group store listens on 127.0.0.1 only (single-node instances)."""

    @property
    def backend_cls(self):
        return _LoopbackBackend
