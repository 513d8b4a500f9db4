"""DDP: a trial with two Ray Train workers keeps its ranks in sync and learns (real Ray, gloo on CPU).

It runs on raykd's loopback-only local instance with its LoopbackTorchConfig, as a local sweep's
DDP trials do, and rank 0 also lists its own listening sockets: the process group's store must
listen on 127.0.0.1 only (PyTorch's default binds all interfaces).
"""

import hashlib
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray


def _ddp_worker(config):
    import ray.train
    import ray.train.torch
    import torch

    from raykd.data.encoding import EncodedSplit
    from raykd.distill.evaluate import evaluate_splits
    from raykd.distill.loop import LoopSettings, fit
    from raykd.methods.vanilla import VanillaKD
    from raykd.students import StudentContext, build_student

    rank, world = ray.train.get_context().get_world_rank(), ray.train.get_context().get_world_size()
    torch.set_num_threads(1)
    train, dev = EncodedSplit.load(config["train"]), EncodedSplit.load(config["dev"])
    torch.manual_seed(0)
    ctx = StudentContext(num_labels=2, is_pair=False, vocab_size=30522, pad_token_id=0, max_length=64)
    model = ray.train.torch.prepare_model(build_student("bilstm", {"embedding_dim": 64, "hidden_dim": 64,
                                                                   "embedding_init": "random"}, ctx))
    seen, steps = [], []

    class Recording(EncodedSplit):  # remembers which examples this rank trains on
        def padded(self, index, pad_id):
            seen.extend(index.tolist())
            steps.append(len(index))
            return super().padded(index, pad_id)

    train = Recording(**vars(train))
    state = fit(model, VanillaKD("mse", 1.0, 0.0).objective, train, LoopSettings(epochs=3, batch_size=32, lr=3e-3),
        evaluate=lambda m: evaluate_splits(m, {"dev": dev}, config["task"], 0), primary="accuracy",
        report=lambda metrics, state: ray.train.report(metrics), rank=rank, world_size=world)
    weights = b"".join(t.detach().numpy().tobytes() for t in model.module.state_dict().values())
    first_epoch = seen[:sum(steps[:len(steps) // 3])]  # 3 epochs of equal step counts
    Path(config["out"], f"rank{rank}").write_text(f"{hashlib.sha256(weights).hexdigest()} {len(steps)} "
                                                  + ",".join(map(str, first_epoch)) + f" {state.best_metric}")
    if rank == 0:
        import json
        import os

        import psutil  # Ray's bundled copy

        listening = [[c.laddr.ip, c.laddr.port] for c in psutil.Process().net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
        Path(config["out"], "listening.json").write_text(json.dumps({"port": int(os.environ["MASTER_PORT"]),
                                                                      "listening": listening}))


def test_two_workers_stay_in_sync_on_disjoint_shards_and_learn(tmp_path, tiny_stage):
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from raykd.sweep.local_ray import start_local_ray
    from raykd.trial.loopback import LoopbackTorchConfig

    _, inputs, built, _ = tiny_stage
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    # the instance and the process-group rendezvous a local sweep's DDP trials use (both on 127.0.0.1)
    start_local_ray(2, include_dashboard=False, log_to_driver=False)
    try:
        trainer = TorchTrainer(_ddp_worker, train_loop_config={"train": str(built.splits["train"].path),
                                                               "dev": str(built.splits["dev"].path),
                                                               "task": inputs.task, "out": str(tmp_path)},
                               torch_config=LoopbackTorchConfig(),
                               scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
                               run_config=RunConfig(name="ddp", storage_path=str(tmp_path / "runs")))
        trainer.fit()
    finally:
        ray.shutdown()
    (digest0, steps0, seen0, best0), (digest1, steps1, seen1, best1) = (
        (tmp_path / f"rank{r}").read_text().split(" ") for r in (0, 1))
    assert digest0 == digest1  # gradients were all-reduced: identical weights on both ranks
    assert steps0 == steps1  # same number of optimiser steps, so no rank waits on a collective
    shard0, shard1 = set(seen0.split(",")), set(seen1.split(","))
    assert not shard0 & shard1  # within an epoch the ranks train on disjoint shards...
    assert len(shard0 | shard1) > 1900  # ...that cover the 2,000 examples (a partial last batch may drop)
    assert best0 == best1 and float(best0) > built.baseline["accuracy"] + 0.1  # and the student learned
    import json

    from raykd.sweep.local_ray import is_loopback

    sockets = json.loads((tmp_path / "listening.json").read_text())
    assert any(port == sockets["port"] for _, port in sockets["listening"])  # rank 0 hosts the group's store...
    assert all(is_loopback(ip) for ip, _ in sockets["listening"]), sockets  # ...on loopback only
