"""The per-worker function of a trial's ``TorchTrainer``: build, distil, checkpoint, report.

Runs in every Ray Train worker. Rank 0 writes a checkpoint after each epoch
(``ray.train.report(..., checkpoint_dir_name="epoch_NNN")``); every rank reports the same number
of times, as Ray Train requires. After the last epoch rank 0 measures batch-1 CPU latency.
On a restart after a worker failure, training resumes from ``ray.train.get_checkpoint()``.

``RAYKD_PAUSE_AFTER_EPOCH_S`` (seconds, default 0) makes every worker sleep after each epoch's
report. It changes no result; it exists for fault-injection tests, which need a trial to sit between
two checkpoints long enough to kill its worker or its driver there, however fast the machine is.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
import time
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from raykd._quiet import quiet_libraries
from raykd.data.encoding import EncodedSplit
from raykd.distill.checkpoint import load_checkpoint, save_checkpoint
from raykd.distill.evaluate import evaluate_splits, measure_latency
from raykd.datafree.loop import fit_data_free
from raykd.distill.loop import LoopSettings, fit
from raykd.errors import NonFiniteLossError
from raykd.records import SELECTION_KEY
from raykd.registry import METHODS
from raykd.students import StudentContext, build_student, count_parameters, student_spec
from raykd.trial.plan import TrialContext

__all__ = ["train_fn_per_worker", "loop_settings", "student_context", "fails_without_retry", "FAILED_KEY",
           "training_set", "training_value", "data_free_trainer"]

PAUSE_ENV = "RAYKD_PAUSE_AFTER_EPOCH_S"

FAILED_KEY = "raykd_failed"
"""Key of the value a one-worker trial's train function returns when its loss diverged."""


def fails_without_retry(train_fn):
    """Wrap a Ray Train worker function so a diverged loss fails the trial without a Train retry.

    Ray Train retries a worker group after *any* worker error (``FailureConfig.max_failures``),
    so a trial whose loss became NaN or infinite would start again from its last checkpoint and
    diverge again. With one worker, the wrapped function instead returns
    ``{FAILED_KEY: "<the error's message>"}`` and the trial's driver
    (:func:`raykd.trial.driver.run_trial`) raises :class:`~raykd.errors.NonFiniteLossError`
    with it, so Tune marks the trial failed at once and ``max_failures`` is left for lost workers.
    With several workers the error is raised as before: a rank returning early would leave the
    others waiting in a collective, and Ray Train's teardown is what releases them.
    """
    @functools.wraps(train_fn)
    def wrapped(config: dict[str, Any]):
        try:
            return train_fn(config)
        except NonFiniteLossError as error:
            if ray.train.get_context().get_world_size() > 1:
                raise
            return {FAILED_KEY: str(error)}

    return wrapped


def loop_settings(trial: dict[str, Any], context: TrialContext, device: str) -> LoopSettings:
    """The trial's optimisation settings: the student family's own (``<family>/training``), else the sweep's."""
    def value(name: str):
        return training_value(trial, name)

    amp = "bf16" if device.startswith("cuda") else None
    return LoopSettings(epochs=int(value("epochs")), batch_size=int(value("batch_size")), lr=float(value("lr")),
                        weight_decay=float(value("weight_decay")), warmup_ratio=float(value("warmup_ratio")),
                        grad_clip=float(value("grad_clip")), seed=context.seed, device=device, amp=amp)


def student_context(context: TrialContext) -> StudentContext:
    """What a student of this trial's task needs to know (labels, pairs, the teacher's vocabulary)."""
    return StudentContext(num_labels=context.task.num_labels, is_pair=context.task.is_pair,
                          vocab_size=int(context.teacher_config["vocab_size"]), pad_token_id=context.pad_id,
                          max_length=context.max_length, teacher_path=context.teacher_path,
                          teacher_config=context.teacher_config)


def _student(trial: dict, context: TrialContext):
    family = trial["student"]
    params = {k: v for k, v in trial[family].items() if k != "training"}
    ctx = student_context(context)
    spec = student_spec(family, params, ctx)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        torch.manual_seed(context.seed)
        return build_student(family, params, ctx), spec, None
    with checkpoint.as_directory() as folder:
        model, state = load_checkpoint(folder)
    return model, spec, state


@fails_without_retry
def train_fn_per_worker(config: dict[str, Any]) -> None:
    """Ray Train worker entry point (a diverged loss ends it: see :func:`fails_without_retry`).

    Args:
        config: ``{"trial": resolved trial settings, "context": TrialContext}``.
    """
    quiet_libraries()
    trial, context = config["trial"], config["context"]
    train_ctx = ray.train.get_context()
    rank, world = train_ctx.get_world_rank(), train_ctx.get_world_size()
    torch.set_num_threads(max(1, int(context.resources.cpus_per_worker)))
    device = str(ray.train.torch.get_device()) if context.resources.use_gpu else "cpu"

    evals = {name: EncodedSplit.load(path) for name, path in context.eval_caches.items()}
    model, spec, state = _student(trial, context)
    module = METHODS.load(trial["method"])
    data_free = not getattr(module, "USES_TASK_TRAIN_DATA", True)
    settings = loop_settings(trial, context, device)
    trainer = data_free_trainer(module, trial, context, model, settings, device) if data_free else None
    train, transfer = (None, {}) if data_free else training_set(module, trial, context, device)
    counts = count_parameters(model)
    extra_params = sum(p.numel() for name, m in (trainer.student_modules.items() if trainer else ())
                       if name == "projection" for p in m.parameters())  # deployed with the student's inputs
    sizes = {"student_params": counts.total + extra_params, "student_params_non_embedding": counts.non_embedding,
             "compression_ratio": context.teacher_params / (counts.total + extra_params),
             "node_id": ray.get_runtime_context().get_node_id(),  # where rank 0 runs (placement checks)
             "worker_pid": os.getpid(),
             "start_epoch": state.epoch if state else 0,  # > 0 after a restart from a checkpoint
             **transfer.get("metrics", {})}
    model = ray.train.torch.prepare_model(model) if world > 1 else model.to(device)
    primary = context.task.primary_metric

    def report(metrics: dict, loop_state) -> None:
        metrics = {**metrics, **sizes, "metric": metrics[primary], SELECTION_KEY: metrics[primary]}
        if loop_state.epoch == settings.epochs and rank == 0:
            metrics["latency_ms"] = measure_latency(getattr(model, "module", model), next(iter(evals.values())),
                                                    context.pad_id)
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if rank == 0:
                save_checkpoint(tmp, model, spec, loop_state, metrics)
                if loop_state.extra.get("samples"):
                    (Path(tmp) / "generated_samples.txt").write_text(loop_state.extra["samples"] + "\n")
                if transfer.get("examples"):  # a few augmented / generated examples, shown in MLflow
                    (Path(tmp) / "transfer_examples.txt").write_text(transfer["examples"])
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"epoch_{loop_state.epoch:03d}")
        if pause_s := float(os.environ.get(PAUSE_ENV, 0)):
            time.sleep(pause_s)

    def evaluate(m):
        return evaluate_splits(m, evals, context.task, context.pad_id, device)

    if data_free:
        fit_data_free(model, trainer, settings, steps_per_epoch=int(training_value(trial, "steps_per_epoch")),
                      evaluate=evaluate, primary=primary, report=report, state=state)
        return
    method = module.make_method(trial.get(trial["method"], {}), context.task)
    fit(model, method.objective, train, settings, evaluate=evaluate, primary=primary, report=report,
        pad_id=context.pad_id, rank=rank, world_size=world, state=state)


def training_set(module, trial: dict, context: TrialContext, device: str) -> tuple[EncodedSplit, dict]:
    """The training split plus the transfer sets the method asks for (from the shared cache, or built once).

    Returns:
        ``(split, info)``: info has ``metrics`` (``transfer_examples`` rows trained on,
        ``transfer_built`` 1 when this trial built a set, ``transfer_build_s``) and ``examples`` text.
    """
    from raykd.transfer.sets import build_transfer_sets

    train = EncodedSplit.load(context.train_cache)
    requests = getattr(module, "transfer_requests", lambda params: [])(trial.get(trial["method"], {}))
    if not requests:
        return train, {}
    stage = None
    if context.transfer_stage is not None:  # a cluster: the set is a Ray task of its own, sized by stages.transfer_sets
        from raykd.stages import resolve_stage

        stage = resolve_stage(context.transfer_stage, ray.cluster_resources(), cpus=context.resources.cpus_per_worker)
    sets = build_transfer_sets(requests, context.transfer, device=device, stage=stage)
    train = EncodedSplit.concat([train, *(s.load() for s in sets)])
    metrics = {"transfer_examples": len(train), "transfer_built": int(any(s.built for s in sets)),
               "transfer_build_s": sum(s.meta["build_seconds"] for s in sets if s.built)}
    for s in sets:
        metrics[f"transfer_{s.meta['kind']}_rows"] = s.meta["rows"]
    return train, {"metrics": metrics, "examples": "\n".join(s.examples for s in sets)}


def training_value(trial: dict, name: str):
    """A training setting: the student family's own override, else the sweep's."""
    return trial[trial["student"]].get("training", {}).get(name, trial.get(name))


def data_free_trainer(module, trial: dict, context: TrialContext, model, settings: LoopSettings, device: str):
    """The data-free method's trainer with the frozen teacher; never touches the task's training split."""
    from raykd.datafree.base import DataFreeEnv, freeze
    from raykd.teachers.cache import teacher_fingerprint
    from raykd.teachers.load import load_teacher, load_tokenizer

    teacher = freeze(load_teacher(context.teacher_path)).to(device)
    tokenizer = load_tokenizer(context.teacher_path)
    vocab = teacher.get_input_embeddings().weight.shape[0]
    env = DataFreeEnv(
        teacher=teacher, teacher_embeddings=teacher.get_input_embeddings().weight.detach(),
        cls_id=tokenizer.cls_token_id, sep_id=tokenizer.sep_token_id, pad_id=tokenizer.pad_token_id,
        mask_id=tokenizer.mask_token_id, special_ids=tuple(sorted(set(tokenizer.all_special_ids))),
        task=context.task, max_length=context.max_length, batch_size=settings.batch_size, device=device,
        seed=context.seed, ood=EncodedSplit.load(context.ood_cache) if context.ood_cache else None,
        cache_dir=context.shared_cache, teacher_fingerprint=teacher_fingerprint(context.teacher_path),
        tokens=tuple(tokenizer.convert_ids_to_tokens(list(range(vocab)))),
    )
    return module.make_trainer(trial[trial["method"]], env, model.to(device))
