"""Trials of a multi-task sweep (``tasks: [...]``): every trial serves every task of the sweep.

A ``multitask`` trial distils one student with a shared encoder and one head per task, jointly
(:mod:`raykd.methods.multitask`). A trial of a single-task method (``vanilla``, ``generation``,
``zero_shot``, ...) distils one student of the sampled family and size per task, one task after
the other, with the same code as a single-task sweep (:mod:`raykd.trial.worker`); each task keeps
its best dev epoch. Both report the same keys, so one sweep compares them:

- ``<task>/metric``: the task's primary dev metric; ``<task>/<name>``: every dev metric;
- ``<task>/params``: parameters of the model that serves the task (multi-task: shared encoder +
  the task's head; single-task: the task's student);
- ``metric`` / ``best_metric``: the GLUE macro average (mean of the tasks' primary metrics);
- ``student_params``: parameters that serve all tasks (multi-task: counted once; single-task and
  per-task fine-tuned students: the sum over tasks); ``compression_ratio``: the teachers' summed
  parameters over that.

A single-task-method trial reports once per finished task (``epoch`` = tasks done, ``metric`` =
the macro over the tasks done so far) and checkpoints once at the end; a multitask trial reports
every joint epoch and once more after per-task fine-tuning. Checkpoints hold one standalone
student folder per task (``<checkpoint>/<task>/``, loadable like a single-task checkpoint). A
restarted worker starts the trial over (no mid-trial resume for multi-task trials).
"""

from __future__ import annotations

import copy
import dataclasses
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from raykd._quiet import quiet_libraries
from raykd.config import ResourcesConfig
from raykd.data.encoding import EncodedSplit
from raykd.distill.checkpoint import save_checkpoint
from raykd.distill.evaluate import evaluate_splits, measure_latency
from raykd.distill.loop import LoopState, fit
from raykd.records import NOT_A_RESULT, SELECTION_KEY
from raykd.registry import METHODS
from raykd.students import build_student, count_parameters, student_spec
from raykd.trial.plan import TrialContext
from raykd.trial.worker import (data_free_trainer, training_set, training_value, fails_without_retry, loop_settings,
                                student_context)

__all__ = ["MultiTaskContext", "train_fn_multi_task", "MACRO"]

MACRO = "macro"
"""Name of the GLUE macro average (mean of each task's primary dev metric)."""


@dataclass(frozen=True)
class MultiTaskContext:
    """What every trial of a multi-task sweep shares.

    Attributes:
        contexts: task name -> that task's :class:`TrialContext` (its teacher, caches, eval splits),
            in the sweep's task order.
    """

    contexts: dict[str, TrialContext]

    @property
    def first(self) -> TrialContext:
        """The first task's context (resources, storage and seed are the same for all)."""
        return next(iter(self.contexts.values()))

    @property
    def loopback(self) -> bool:
        """Trials run on raykd's single-node instance (see :attr:`TrialContext.loopback`)."""
        return self.first.loopback

    @property
    def resources(self) -> ResourcesConfig:
        """Ray Train resources per trial."""
        return self.first.resources

    @property
    def train_storage(self) -> str:
        """Where Train runs and checkpoints go."""
        return self.first.train_storage

    @property
    def teacher_params(self) -> int:
        """The teachers' parameters, summed over tasks."""
        return sum(c.teacher_params for c in self.contexts.values())


class BestEpoch:
    """A loop ``report`` that keeps the best epoch by ``primary``: its metrics, loop state and weights (on CPU)."""

    def __init__(self, model: torch.nn.Module, primary: str):
        self.model, self.primary = model, primary
        self.metric, self.metrics, self.state, self.weights = -float("inf"), {}, None, None

    def __call__(self, metrics: dict, state: LoopState) -> None:
        if metrics[self.primary] > self.metric:
            self.metric, self.metrics, self.state = metrics[self.primary], dict(metrics), copy.deepcopy(state)
            self.weights = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def restore(self) -> dict[str, float]:
        """Load the best weights into the model; return that epoch's dev metrics."""
        self.model.load_state_dict(self.weights)
        return {k: v for k, v in self.metrics.items() if k in _dev_keys(self.metrics)}


def _family_params(trial: dict) -> dict:
    return {k: v for k, v in trial[trial["student"]].items() if k != "training"}


def _task_metrics(task: str, primary: str, metrics: dict[str, float]) -> dict[str, float]:
    """``<task>/<name>`` for every dev metric plus ``<task>/metric`` for the primary one."""
    out = {f"{task}/{k}": float(v) for k, v in metrics.items()}
    out[f"{task}/metric"] = float(metrics[primary])
    return out


def _macro(results: dict[str, float], tasks) -> float:
    return float(sum(results[f"{t}/metric"] for t in tasks) / len(tasks))


@fails_without_retry
def train_fn_multi_task(config: dict[str, Any]) -> None:
    """Ray Train worker entry point of a multi-task sweep's trial (one worker; see :func:`fails_without_retry`).

    Args:
        config: ``{"trial": resolved trial settings, "context": MultiTaskContext}``.
    """
    quiet_libraries()
    trial, context = config["trial"], config["context"]
    torch.set_num_threads(max(1, int(context.resources.cpus_per_worker)))
    device = str(ray.train.torch.get_device()) if context.resources.use_gpu else "cpu"
    module = METHODS.load(trial["method"])
    if getattr(module, "MULTI_TASK", False):
        _joint(module, trial, context, device)
    else:
        _task_by_task(module, trial, context, device)


def _report(metrics: dict, folders: dict[str, tuple] | None) -> None:
    """``ray.train.report`` with, when ``folders`` is given, a checkpoint of one student folder per task.

    The checkpoint's selection value is its macro (``metric``) unless ``metrics`` sets one.
    """
    metrics = {SELECTION_KEY: metrics["metric"], **metrics}
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = None
        if folders is not None:
            for task, (model, spec, state, task_metrics) in folders.items():
                save_checkpoint(str(Path(tmp) / task), model, spec, state, task_metrics)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"epoch_{int(metrics['epoch']):03d}")


def _task_by_task(module, trial: dict, context: MultiTaskContext, device: str) -> None:
    """A single-task method: one student per task, trained one task after the other."""
    from raykd.datafree.loop import fit_data_free

    family, params = trial["student"], _family_params(trial)
    data_free = not getattr(module, "USES_TASK_TRAIN_DATA", True)
    results: dict[str, float] = {"worker_pid": os.getpid()}
    kept: dict[str, tuple] = {}
    total_params = total_non_embedding = 0
    latency = None
    for done, (name, ctx) in enumerate(context.contexts.items(), start=1):
        evals = {split: EncodedSplit.load(path) for split, path in ctx.eval_caches.items()}
        sctx = student_context(ctx)
        torch.manual_seed(ctx.seed)
        model = build_student(family, params, sctx)
        spec = student_spec(family, params, sctx)
        settings = loop_settings(trial, ctx, device)
        primary = ctx.task.primary_metric
        keep_best = BestEpoch(model, primary)

        def evaluate(m, evals=evals, ctx=ctx):
            return evaluate_splits(m, evals, ctx.task, ctx.pad_id, device)

        extra = 0
        if data_free:
            trainer = data_free_trainer(module, trial, ctx, model, settings, device)
            extra = sum(p.numel() for key, m in trainer.student_modules.items() if key == "projection"
                        for p in m.parameters())
            fit_data_free(model, trainer, settings, steps_per_epoch=int(training_value(trial, "steps_per_epoch")),
                          evaluate=evaluate, primary=primary, report=keep_best, state=None)
        else:
            train, transfer = training_set(module, trial, ctx, device)
            model.to(device)
            method = module.make_method(trial.get(trial["method"], {}), ctx.task)
            fit(model, method.objective, train, settings, evaluate=evaluate, primary=primary, report=keep_best,
                pad_id=ctx.pad_id)
            if "transfer_examples" in transfer.get("metrics", {}):
                results[f"{name}/transfer_examples"] = transfer["metrics"]["transfer_examples"]
        dev = keep_best.restore()
        counts = count_parameters(model)
        total_params += counts.total + extra
        total_non_embedding += counts.non_embedding
        results.update(_task_metrics(name, primary, dev))
        results[f"{name}/params"] = counts.total + extra
        results[f"{name}/best_epoch"] = keep_best.state.best_epoch
        kept[name] = (model.cpu(), spec, keep_best.state, {**dev, "metric": keep_best.metric})
        if latency is None:
            latency = measure_latency(model, next(iter(evals.values())), ctx.pad_id)
        names = list(kept)
        macro = _macro(results, names)
        final = done == len(context.contexts)
        metrics = {**results, "epoch": done, "tasks_done": done, "metric": macro, MACRO: macro,
                   "examples_per_s": keep_best.metrics.get("examples_per_s", 0.0),
                   "best_metric": macro, "best_epoch": done, "student_params": total_params,
                   "student_params_non_embedding": total_non_embedding,
                   "compression_ratio": sum(context.contexts[t].teacher_params for t in names) / total_params}
        if final:
            metrics["latency_ms"] = latency
        _report(metrics, kept if final else None)


def _dev_keys(metrics: dict) -> set[str]:
    """The dev-metric keys of a loop report (not the loop's own bookkeeping)."""
    loop_keys = {"epoch", "train_loss", "train_seconds", "examples_per_s", "best_metric", "best_epoch"}
    return {k for k, v in metrics.items() if k not in loop_keys and not k.startswith(("steps/", "loss/"))
            and isinstance(v, (int, float))}


def _joint(module, trial: dict, context: MultiTaskContext, device: str) -> None:
    """The ``multitask`` method: one shared student distilled on every task at once, then optional fine-tuning."""
    from raykd.distill.multitask import fit_multitask
    from raykd.students.multitask import build_multitask_student, multitask_param_counts

    family, params = trial["student"], _family_params(trial)
    method_params = trial.get(trial["method"], {})
    tasks = list(context.contexts)
    first = context.first
    sctxs = {t: student_context(c) for t, c in context.contexts.items()}
    model = build_multitask_student(family, params, sctxs, seed=first.seed).to(device)
    specs = {t: student_spec(family, params, s) for t, s in sctxs.items()}
    trains = {t: EncodedSplit.load(c.train_cache) for t, c in context.contexts.items()}
    evals = {t: {s: EncodedSplit.load(p) for s, p in c.eval_caches.items()} for t, c in context.contexts.items()}
    objectives = {t: module.make_method(method_params, c.task).objective for t, c in context.contexts.items()}
    settings = loop_settings(trial, first, device)
    counts = multitask_param_counts(model)
    sizes = {"student_params": counts["total"], "student_params_non_embedding": counts["total_non_embedding"],
             "compression_ratio": context.teacher_params / counts["total"], "shared_params": counts["shared"],
             "worker_pid": os.getpid(), **{f"{t}/params": counts["per_task"][t] for t in tasks}}

    def evaluate_task(m, t):
        c = context.contexts[t]
        return evaluate_splits(m, evals[t], c.task, c.pad_id, device)

    def evaluate(m) -> dict[str, float]:
        out: dict[str, float] = {}
        for t in tasks:
            out.update(_task_metrics(t, context.contexts[t].task.primary_metric, evaluate_task(m.task_model(t), t)))
        out[MACRO] = _macro(out, tasks)
        return out

    best = BestEpoch(model, MACRO)

    ft_epochs = int(method_params.get("finetune_epochs", 0) or 0)

    def report(metrics: dict, state: LoopState) -> None:
        metrics = {**metrics, **sizes, "metric": metrics[MACRO]}
        if ft_epochs > 0:  # MKD + fine-tuning: the fine-tuned students are the result; these resume only
            metrics[SELECTION_KEY] = NOT_A_RESULT
        best(metrics, state)
        folders = {t: (model.task_model(t), specs[t], state, _per_task_dev(metrics, t)) for t in tasks}
        if state.epoch == settings.epochs and not method_params.get("finetune_epochs", 0):
            metrics["latency_ms"] = measure_latency(model.task_model(tasks[0]), next(iter(evals[tasks[0]].values())),
                                                    first.pad_id)
        _report(metrics, folders)

    sampling = method_params.get("sampling", "proportional")
    tau = float(method_params.get("sampling_temperature", 1.0)) if sampling == "temperature" else 1.0
    state = fit_multitask(model, objectives, trains, settings, evaluate=evaluate, primary=MACRO, report=report,
                          pad_id=first.pad_id, sampling=sampling, tau=tau)
    if ft_epochs <= 0:
        return
    best.restore()
    _fine_tune_each(model, trial, context, objectives, trains, evaluate_task, best, specs, sizes, settings,
                    ft_epochs, state.epoch + 1, device)


def _per_task_dev(metrics: dict, task: str) -> dict[str, float]:
    prefix = f"{task}/"
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix) and k != f"{task}/params"}


def _fine_tune_each(model, trial, context: MultiTaskContext, objectives, trains, evaluate_task, joint: BestEpoch, specs,
                    sizes: dict, settings, epochs: int, epoch: int, device: str) -> None:
    """MKD's optional stage: each task's model (shared encoder + head) copied and fine-tuned on that task alone."""
    tasks = list(context.contexts)
    ft_settings = dataclasses.replace(settings, epochs=epochs)
    results: dict[str, float] = {}
    folders = {}
    for t in tasks:
        c = context.contexts[t]
        task_model = copy.deepcopy(model.task_model(t)).to(device)
        primary = c.task.primary_metric
        keep_best = BestEpoch(task_model, primary)
        fit(task_model, objectives[t], trains[t], ft_settings, evaluate=lambda m, t=t: evaluate_task(m, t),
            primary=primary, report=keep_best, pad_id=c.pad_id)
        dev = keep_best.restore()
        results.update(_task_metrics(t, primary, dev))
        results[f"{t}/metric_before_finetune"] = joint.metrics[f"{t}/metric"]
        folders[t] = (task_model.cpu(), specs[t], keep_best.state, {**dev, "metric": keep_best.metric})
    macro = _macro(results, tasks)
    total = sum(sizes[f"{t}/params"] for t in tasks)  # fine-tuned models no longer share an encoder
    non_embedding = sum(count_parameters(folders[t][0]).non_embedding for t in tasks)
    metrics = {**sizes, **results, "epoch": epoch, "metric": macro, MACRO: macro,
               "macro_before_finetune": joint.metric, "best_metric": macro, "best_epoch": epoch,
               "student_params": total, "student_params_non_embedding": non_embedding,
               "compression_ratio": context.teacher_params / total,
               "latency_ms": measure_latency(folders[tasks[0]][0], EncodedSplit.load(
                   next(iter(context.contexts[tasks[0]].eval_caches.values()))), context.first.pad_id)}
    _report(metrics, folders)
