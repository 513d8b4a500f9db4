"""What each heavy stage asks Ray for: a space's ``stages:`` section filled in from the cluster.

The heavy stages are the teacher fine-tuning tasks, the soft-target batch inference (teacher
replicas as Ray Data actors) and the transfer-set builds. :func:`resolve_stages` turns the space's
:class:`~raykd.config.StagesConfig` (any value may be unset) into concrete :class:`StagePlan`
values for the cluster Ray reports, so ``raykd validate``, the cost estimate and the stages all
use the same numbers:

* ``gpus``: one per unit when the cluster has GPUs, else none;
* ``cpus``: teacher: the free CPUs shared out among the teachers to fine-tune (None here; the
  teacher stage divides them when it submits, never more than a node that can take the task has);
  soft targets: a node's worth per replica without GPUs, else the CPUs per GPU of the GPU nodes
  (at most 8); transfer sets: a trial worker's CPUs;
* ``replicas`` (soft targets): as given, else one per GPU, or one per node's worth of CPUs, never
  more than the cluster can run at once;
* ``batch_size`` (soft targets): ``teacher.batch_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from raykd.config import StageResources, SweepConfig

__all__ = ["StagePlan", "resolve_stages", "unfit_units", "resolve_stage", "describe_stages", "STAGE_NAMES",
           "cluster_nodes", "largest_fit", "teacher_task_cpus"]

STAGE_NAMES = ("teacher", "soft_targets", "transfer_sets")
"""The heavy stages, in the order a sweep runs them."""

GIB = 1 << 30


@dataclass(frozen=True)
class StagePlan:
    """Concrete resources of one unit of a stage.

    Attributes:
        gpus: GPUs per unit.
        cpus: CPUs per unit (None: the teacher stage shares the free CPUs out when it submits).
        memory_gb: memory reserved per unit in GiB (0: none).
        replicas: units running at once (soft-target replicas; 1 for the other stages' planning).
        batch_size: examples per forward pass (soft targets).
        resources: custom Ray resources per unit.
    """

    gpus: float = 0.0
    cpus: float | None = 1.0
    memory_gb: float = 0.0
    replicas: int = 1
    batch_size: int = 128
    resources: dict[str, float] = field(default_factory=dict)

    def ray_options(self, cpus: float | None = None) -> dict:
        """Keyword arguments for ``ray.remote(...).options(...)`` / ``map_batches`` (``num_cpus``, ``num_gpus``, ...)."""
        options = {"num_cpus": cpus if cpus is not None else (self.cpus if self.cpus is not None else 1.0),
                   "num_gpus": self.gpus}
        if self.memory_gb:
            options["memory"] = int(self.memory_gb * GIB)
        if self.resources:
            options["resources"] = dict(self.resources)
        return options

    def describe(self) -> str:
        """``1 GPU, 4 CPUs, 16 GiB`` in words."""
        parts = [f"{self.gpus:g} GPU" if self.gpus else "no GPU",
                 "the free CPUs shared out" if self.cpus is None else f"{self.cpus:g} CPU"]
        if self.memory_gb:
            parts.append(f"{self.memory_gb:g} GiB")
        parts += [f"{v:g} {k}" for k, v in self.resources.items()]
        return ", ".join(parts)


def largest_fit(nodes: list[dict[str, float]], gpus: float) -> float:
    """The most CPUs one unit asking for ``gpus`` GPUs can get: the CPUs of the biggest node that has them."""
    fitting = [n.get("CPU", 0.0) for n in nodes if n.get("GPU", 0.0) >= gpus]
    return max(fitting, default=0.0)


def unfit_units(plans: dict[str, StagePlan], nodes: list[dict[str, float]]) -> list[str]:
    """One line per stage whose unit (a teacher task, a replica, a build) fits on none of ``nodes``.

    A unit fits a node that has its GPUs, its CPUs and its memory (``ray.nodes()``'s ``memory``, in
    bytes: what Ray schedules against, about 70% of the machine). Ray would leave such a unit pending
    for ever on these nodes; on an autoscaling cluster a bigger node type may still come, so callers
    warn rather than refuse.
    """
    lines = []
    for name, plan in plans.items():
        need = {"GPU": plan.gpus, "CPU": plan.cpus or 0.0, "memory": plan.memory_gb * GIB}
        if nodes and not any(all(n.get(k, 0.0) >= v for k, v in need.items() if v) for n in nodes):
            biggest = max(nodes, key=lambda n: (n.get("GPU", 0.0), n.get("memory", 0.0)))
            lines.append(f"stages.{name} asks for {plan.describe()} per unit, which no node has (the biggest: "
                         f"{biggest.get('GPU', 0):g} GPU, {biggest.get('CPU', 0):g} CPU, "
                         f"{biggest.get('memory', 0) / GIB:.1f} GiB of Ray memory); lower it or add a bigger node type")
    return lines


def teacher_task_cpus(plan: StagePlan | None, *, free: float, pending: int, floor: float,
                      nodes: list[dict[str, float]] | None) -> float:
    """CPUs each teacher fine-tuning task asks for: ``stages.teacher.cpus`` when given; else the free
    CPUs shared out among the ``pending`` teachers (at least ``floor``), never more than the biggest
    node that has the GPUs the task asks for (so the task always fits on one node).

    The teacher stage submits with this number and the cost estimate plans with it.
    """
    if plan is not None and plan.cpus is not None:
        return plan.cpus
    cpus = max(floor, float(int(free // max(pending, 1))))
    room = largest_fit(nodes or [], plan.gpus if plan is not None else 0.0)
    return min(cpus, float(int(room))) if room >= 1 else cpus


def cluster_nodes() -> list[dict[str, float]]:
    """The alive nodes' resources (``ray.nodes()``), for the per-node defaults; Ray must be started."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def resolve_stages(space: SweepConfig, cluster: dict[str, float],
                   nodes: list[dict[str, float]] | None = None) -> dict[str, StagePlan]:
    """Fill the space's ``stages:`` values from the cluster's resources.

    Args:
        space: the parsed space.
        cluster: ``ray.cluster_resources()`` (or, before Ray starts, the local machine's
            ``{"CPU": n, "GPU": g}``).
        nodes: each node's resources (``ray.nodes()``); None: one node holding ``cluster``.

    Returns:
        stage name (:data:`STAGE_NAMES`) -> :class:`StagePlan`.
    """
    nodes = [n for n in (nodes or [cluster]) if n.get("CPU", 0) or n.get("GPU", 0)] or [cluster]
    total_gpus, total_cpus = cluster.get("GPU", 0.0), cluster.get("CPU", 0.0)
    biggest_node = max(n.get("CPU", 0.0) for n in nodes) or 1.0
    stages = space.stages
    plans = {"teacher": resolve_stage(stages.teacher, cluster, cpus=None),
             "transfer_sets": resolve_stage(stages.transfer_sets, cluster, cpus=space.resources.cpus_per_worker)}
    soft = stages.soft_targets
    gpus = soft.gpus if soft.gpus is not None else (1.0 if total_gpus else 0.0)
    if soft.cpus is not None:
        cpus = soft.cpus
    elif gpus:  # the CPUs per GPU of the GPU nodes (at most 8), so a replica always fits on its node
        gpu_nodes = [n for n in nodes if n.get("GPU", 0) >= gpus] or nodes
        cpus = float(max(1, min(8, *(int(n.get("CPU", 0) / max(1.0, n.get("GPU", 1) / gpus)) for n in gpu_nodes))))
    else:
        cpus = biggest_node
    fits = [int(total_cpus // cpus) if cpus else math.inf]
    if gpus:
        fits.append(int(total_gpus // gpus))
    if soft.replicas:  # as asked (an autoscaling cluster grows to it)
        replicas = soft.replicas
    else:  # never more than the cluster can run at once
        replicas = int(total_gpus // gpus) if gpus else len(nodes)
        replicas = max(1, min(replicas, *[f for f in fits if f > 0] or [1]))
    plans["soft_targets"] = StagePlan(gpus=gpus, cpus=cpus, memory_gb=soft.memory_gb or 0.0, replicas=replicas,
                                      batch_size=soft.batch_size or space.teacher.batch_size,
                                      resources=dict(soft.resources))
    return plans


def resolve_stage(given: StageResources, cluster: dict[str, float], *, cpus: float | None) -> StagePlan:
    """One task-like stage (teacher, transfer sets): one GPU when the cluster has GPUs, ``cpus`` when unset."""
    return StagePlan(gpus=given.gpus if given.gpus is not None else (1.0 if cluster.get("GPU", 0) else 0.0),
                     cpus=given.cpus if given.cpus is not None else cpus, memory_gb=given.memory_gb or 0.0,
                     resources=dict(given.resources))


def describe_stages(space: SweepConfig, cluster: dict[str, float] | None, *, local: bool) -> list[str]:
    """What ``raykd validate`` prints about the heavy stages.

    Args:
        cluster: the resources the stages will see (a local instance's); None on a cluster that is
            only seen when the sweep attaches (the space's own values are shown, unset ones as "auto").
        local: one machine (transfer sets are built by the trial that needs one).
    """
    if cluster is None:
        def shown(given: StageResources) -> str:
            return ", ".join(f"{k} {getattr(given, k) if getattr(given, k) is not None else 'auto'}"
                             for k in ("gpus", "cpus", "memory_gb")) + "".join(f", {v:g} {k}" for k, v in given.resources.items())

        stages = space.stages
        return ["stages (filled in from the cluster when the sweep attaches; auto: one GPU per unit when it has GPUs):",
                *([f"  teacher fine-tuning: a Ray task per teacher with {shown(stages.teacher)}"]
                  if space.teacher.fine_tune else []),
                f"  soft targets: Ray Data teacher replicas ({stages.soft_targets.replicas or 'auto'}) with "
                f"{shown(stages.soft_targets)}",
                f"  transfer sets: a Ray task per set with {shown(stages.transfer_sets)}; trials that need one wait"]
    plans = resolve_stages(space, cluster)
    soft = plans["soft_targets"]
    where = ("built by the first trial that needs one, on its own CPUs" if local
             else f"a Ray task per set with {plans['transfer_sets'].describe()}; trials that need one wait")
    return ["stages:",
            *([f"  teacher fine-tuning: a Ray task per teacher with {plans['teacher'].describe()}"]
              if space.teacher.fine_tune else []),
            f"  soft targets: {soft.replicas} Ray Data teacher replica(s) of {soft.describe()}, batch {soft.batch_size}",
            f"  transfer sets: {where}"]
