"""The Tune function trainable that launches one trial's ``TorchTrainer`` (Ray 2.60, Train V2).

This follows Ray's documented Train-inside-Tune pattern (``train_tune_interop.py``): the Tune
trial is a small driver that builds a ``TorchTrainer`` named after the trial id and calls
``fit()``. Per-epoch metrics reach Tune through ``TuneReportCallback``; when ``fit()`` returns,
the driver reports one final result holding the best checkpoint's path (checkpoints are ranked by
the ``selection`` value the workers report with them) and, under ``selected`` and at its top level,
the metrics the workers reported with that checkpoint: the trial's figures (its Optuna objectives,
trials.csv, the front, MLflow) are the saved checkpoint's by construction.
The Train run name has no timestamp, so a retried or restored trial resumes its own run.
"""

from __future__ import annotations

from typing import Any

import ray.train
import ray.tune
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from raykd.errors import NonFiniteLossError
from raykd.records import SELECTED_KEY, SELECTION_KEY
from raykd.trial.loopback import LoopbackTorchConfig
from raykd.trial.worker import FAILED_KEY, train_fn_per_worker

__all__ = ["run_trial", "scaling_config"]


def scaling_config(context) -> ray.train.ScalingConfig:
    """Workers and per-worker resources of a trial, from the space's ``resources`` section."""
    res = context.resources
    per_worker = {"CPU": res.cpus_per_worker, **res.worker_resources}
    if res.use_gpu:
        per_worker["GPU"] = res.gpus_per_worker
    return ray.train.ScalingConfig(num_workers=res.num_workers, use_gpu=res.use_gpu, resources_per_worker=per_worker)


def run_trial(config: dict[str, Any], context) -> None:
    """Tune trainable: distil one student (one per task, or one multi-task student) with the trial's settings.

    Raises:
        NonFiniteLossError: the student's loss diverged (the worker returned instead of raising, so
            Ray Train did not retry it).

    Args:
        config: the settings Optuna sampled for this trial (nested by ``/``).
        context: what all trials share (bound with ``tune.with_parameters``): a :class:`TrialContext`,
            or a :class:`~raykd.trial.multitask.MultiTaskContext` in a multi-task sweep.
    """
    from raykd.trial.multitask import MultiTaskContext, train_fn_multi_task

    trial_id = ray.tune.get_context().get_trial_id()
    trainer = TorchTrainer(
        train_fn_multi_task if isinstance(context, MultiTaskContext) else train_fn_per_worker,
        train_loop_config={"trial": config, "context": context},
        scaling_config=scaling_config(context),
        torch_config=LoopbackTorchConfig() if context.loopback else None,
        run_config=ray.train.RunConfig(
            name=f"trial-{trial_id}",
            storage_path=context.train_storage,
            callbacks=[TuneReportCallback()],
            failure_config=ray.train.FailureConfig(max_failures=context.resources.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(
                num_to_keep=1, checkpoint_score_attribute=SELECTION_KEY, checkpoint_score_order="max"),
        ),
    )
    result = trainer.fit()
    if isinstance(result.return_value, dict) and FAILED_KEY in result.return_value:
        raise NonFiniteLossError(result.return_value[FAILED_KEY])  # Tune marks the trial failed with it
    best = result.get_best_checkpoint(metric=SELECTION_KEY, mode="max")
    selected = next((dict(m) for c, m in result.best_checkpoints or () if best is not None and c.path == best.path), {})
    # the selected epoch's figures on top, so Optuna is told the objectives of the checkpoint the trial keeps
    final = {**(result.metrics or {}), **selected, "checkpoint_dir": best.path if best else None, "final": True,
             SELECTED_KEY: selected}
    ray.tune.report(final)
