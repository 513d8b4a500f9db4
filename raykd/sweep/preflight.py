"""Every check a sweep runs, before it writes anything: the one path ``raykd validate`` and ``raykd sweep`` share.

:func:`preflight` reads the space's data, teachers and options and refuses, with one
:class:`~raykd.errors.RaykdInputError` line, anything a sweep would otherwise trip over later:

* the inputs (:func:`raykd.checks.check_task_inputs`): data files, columns, labels, teacher files,
  method and student settings against the teacher;
* every teacher (:func:`raykd.sweep.teachers.plan_teachers`): a ready one is loaded and measured on
  dev against the majority-class baseline; one to fine-tune gets its cache folder;
* the storage folder, the MLflow tracking URI, and the resources a trial asks for against what
  the local Ray instance will have;
* for ``--resume``, the sweep folder's own files.

It writes nothing: not the storage folder, not the cache, not MLflow (reading an earlier sweep's
cached soft targets is allowed). :func:`raykd.sweep.run.run_sweep` calls it first and only then
writes; ``raykd validate`` calls it and prints :meth:`Preflight.describe`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from raykd.checks import TaskInputs, check_task_inputs
from raykd.config import SweepConfig
from raykd.errors import RaykdInputError
from raykd.storage import check_storage

__all__ = ["SweepOptions", "Preflight", "preflight", "check_local_resources", "local_cpus", "read_resume_meta",
           "SWEEP_META_KEYS"]

SWEEP_META_KEYS = {"num_samples": int, "mlflow_uri": str, "mlflow_parent_run_id": str}
"""The keys (and types) of ``sweep.json`` that ``--resume`` needs besides those the report reads."""


@dataclass(frozen=True)
class SweepOptions:
    """How to run a sweep (the command line's options).

    Attributes:
        storage: root folder for sweeps, the cache and the default MLflow store.
        num_samples: overrides ``budget.num_samples``.
        max_concurrent: overrides ``budget.max_concurrent``.
        address: an existing Ray cluster (``auto`` or ``host:port``); None starts a local instance.
        mlflow_uri: MLflow tracking URI; None means ``sqlite:///<storage>/mlflow.db``.
        num_cpus: CPUs a local Ray instance gives trial workers (default: this machine's); it gets one
            more logical CPU for the trials' driver processes.
        echo: where progress lines go.
        live: show trials as a table redrawn in place (for terminals) instead of event lines.
    """

    storage: str = "./raykd_runs"
    num_samples: int | None = None
    max_concurrent: int | None = None
    address: str | None = None
    mlflow_uri: str | None = None
    num_cpus: int | None = None
    echo: Callable[[str], Any] = field(default=print)
    live: bool = False


@dataclass(frozen=True)
class Preflight:
    """A sweep that passed every check, and what the checks found (nothing written yet).

    Attributes:
        space: the search space.
        options: the run options.
        storage: the storage folder (absolute; may not exist yet).
        tracking_uri: the MLflow tracking URI.
        tasks: task name -> its checked inputs (one entry for a single-task sweep).
        teachers: task name -> where its teacher comes from (:class:`~raykd.sweep.teachers.TeacherPlan`).
        num_samples: trials the sweep runs.
        device: where the teacher stage runs (``cuda`` with GPU trials on a GPU machine, else ``cpu``).
        resume_dir: the sweep folder to continue (``--resume``), else None.
        meta: that folder's ``sweep.json``.
    """

    space: SweepConfig
    options: SweepOptions
    storage: Path
    tracking_uri: str
    tasks: dict[str, TaskInputs]
    teachers: dict[str, Any]
    num_samples: int
    device: str = "cpu"
    resume_dir: Path | None = None
    meta: dict | None = None

    @property
    def cache(self) -> Path:
        """The shared cache folder (``<storage>/cache``)."""
        return self.storage / "cache"

    @property
    def single(self) -> TaskInputs:
        """The one task of a single-task sweep."""
        return next(iter(self.tasks.values()))

    def describe(self) -> str:
        """The plan ``raykd validate`` prints: inputs, teachers, storage, tracking, resources."""
        from raykd.plan import describe_multi_task_plan, describe_plan

        lines = {name: plan.describe(t.space) for name, t in self.tasks.items() for plan in [self.teachers[name]]}
        if self.space.multi_task:
            text = describe_multi_task_plan(self.space, self.tasks, teacher_lines=lines)
        else:
            task = self.single
            text = describe_plan(self.space, task.inputs, teacher_lines=lines[task.inputs.task.name],
                                 fine_tune=task.fine_tune)
        local = self.options.address is None
        where = (f"a local Ray instance with {local_cpus(self.options)} CPUs for trial workers" if local
                 else f"the Ray cluster at {self.options.address} (resources checked when the sweep attaches)")
        from raykd.stages import describe_stages

        machine = {"CPU": float(local_cpus(self.options) + 1), "GPU": float(_cuda_count())} if local else None
        text = "\n".join([text, *self._method_plan_lines(), *describe_stages(self.space, machine, local=local)])
        return "\n".join([text, f"storage: {self.storage} ({'exists' if self.storage.is_dir() else 'created by the sweep'}); "
                                f"MLflow: {self.tracking_uri}", f"runs on {where}; {self.num_samples} trials"])

    def _method_plan_lines(self) -> list[str]:
        """Each method's own plan lines per task (``plan_lines(domains, train_rows, trials)``, e.g.
        generation's planned sample counts), for the tasks whose training split was read."""
        from raykd.registry import METHODS

        lines = []
        for name, task in self.tasks.items():
            if "train" not in task.inputs.frames:
                continue
            for method, domains in task.space.methods.items():
                if (plan := getattr(METHODS.load(method), "plan_lines", None)) is not None:
                    found = plan(domains, len(task.inputs.frames["train"]), self.num_samples)
                    lines += [f"task {name}: {found[0]}", *found[1:]] if self.space.multi_task else found
        return lines


def _cuda_count() -> int:
    """CUDA GPUs torch sees here (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def local_cpus(options: SweepOptions) -> int:
    """CPUs a local Ray instance gives trial workers: ``--num-cpus``, else this machine's cores."""
    return options.num_cpus or os.cpu_count() or 1


def preflight(space: SweepConfig, options: SweepOptions, *, resume_dir: str | Path | None = None,
              meta: dict | None = None) -> Preflight:
    """Run every check of a sweep; write nothing.

    Args:
        space: the parsed search space.
        options: the run options (storage, tracking URI, Ray address, CPUs).
        resume_dir: a sweep folder to continue; its parent is the storage.
        meta: that folder's ``sweep.json`` (:func:`read_resume_meta`).

    Raises:
        RaykdInputError: the first problem found, in one line with the fix.
    """
    from raykd._quiet import quiet_libraries
    from raykd.sweep.teachers import plan_teachers
    from raykd.tracking.uri import check_tracking_uri, default_tracking_uri

    quiet_libraries()
    storage = Path(resume_dir).resolve().parent if resume_dir else check_storage(options.storage)
    tracking_uri = options.mlflow_uri or (meta["mlflow_uri"] if meta else default_tracking_uri(storage))
    check_tracking_uri(tracking_uri)
    check_local_resources(space, options)
    tasks = check_task_inputs(space, options.echo)
    device = "cuda" if space.resources.use_gpu and _cuda() else "cpu"
    prefix = (lambda name: f"task {name}: ") if space.multi_task else (lambda name: "")
    teachers = plan_teachers(space, tasks, storage / "cache", device=device, prefix=prefix)
    num_samples = meta["num_samples"] if meta else options.num_samples or space.budget.num_samples
    return Preflight(space=space, options=options, storage=storage, tracking_uri=tracking_uri, tasks=tasks,
                     teachers=teachers, num_samples=num_samples, device=device,
                     resume_dir=Path(resume_dir).resolve() if resume_dir else None, meta=meta)


def check_local_resources(space: SweepConfig, options: SweepOptions) -> None:
    """Refuse what a local Ray instance could never schedule (a cluster given with ``--address`` may scale up).

    Raises:
        RaykdInputError: custom resources, GPUs the machine lacks, or more CPUs per trial than the
            instance has; the message gives the figures.
    """
    if options.address:
        return
    res = space.resources
    if res.worker_resources:
        names = ", ".join(res.worker_resources)
        raise RaykdInputError(f"resources.worker_resources asks for {names}, which a local Ray instance does not "
                              "have; attach to a cluster that advertises it with --address, or drop it")
    cpus, need = local_cpus(options), res.num_workers * res.cpus_per_worker
    if need > cpus:
        raise RaykdInputError(f"a trial needs {res.num_workers} worker(s) x {res.cpus_per_worker:g} CPU = {need:g} CPUs, "
                              f"but the local Ray instance has {cpus} (--num-cpus, default this machine's cores); "
                              "lower resources.num_workers or cpus_per_worker, or raise --num-cpus")
    if res.use_gpu:
        gpus, need = _gpu_count(), res.num_workers * res.gpus_per_worker
        if gpus == 0:
            raise RaykdInputError("resources.gpus_per_worker > 0 but this machine has no CUDA GPU; set "
                                  "gpus_per_worker: 0, or attach to a cluster with GPUs with --address")
        if need > gpus:
            raise RaykdInputError(f"a trial needs {res.num_workers} worker(s) x {res.gpus_per_worker:g} GPU = {need:g} "
                                  f"GPUs, but this machine has {gpus}; lower resources.num_workers or gpus_per_worker")


def read_resume_meta(sweep_dir: str | Path) -> dict:
    """The ``sweep.json`` of a folder ``--resume`` can continue.

    Raises:
        RaykdInputError: not a sweep folder, ``sweep.json`` damaged or lacking keys, no
            ``space.yaml``, or a sweep that stopped before its first trial.
    """
    from raykd.sweep.results import read_sweep_meta

    folder = Path(sweep_dir).resolve()
    if not folder.is_dir():
        raise RaykdInputError(f"--resume {sweep_dir}: no such folder; give a sweep folder under your --storage")
    meta = read_sweep_meta(folder)
    missing = [k for k, kind in SWEEP_META_KEYS.items() if not isinstance(meta.get(k), kind)
               or isinstance(meta.get(k), bool)]
    if missing:
        raise RaykdInputError(f"{folder / 'sweep.json'} lacks {', '.join(missing)} (or has the wrong type), so the sweep "
                              f"cannot be continued; restore the file, or start anew with raykd sweep --space "
                              f"{folder / 'space.yaml'}")
    if not (folder / "space.yaml").is_file():
        raise RaykdInputError(f"{folder} has no space.yaml, so the sweep cannot be continued; restore it")
    if not (folder / "tune").is_dir() or not any((folder / "tune").glob("experiment_state*.json")):
        raise RaykdInputError(f"{folder} stopped before its first trial started, so there is nothing to "
                              f"resume; start it again with raykd sweep --space {folder / 'space.yaml'}")
    return meta


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0
