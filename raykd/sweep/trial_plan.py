"""How many trials run at once, and which come first: the sweep's trial plan, shared by the sweep
(:mod:`raykd.sweep.run`) and its cost estimate (:mod:`raykd.sweep.workload`)."""

from __future__ import annotations

from raykd.config import SweepConfig

__all__ = ["DRIVER_CPU", "default_max_concurrent", "transfer_reserve", "builds_transfer_sets", "startup_trials",
           "first_points"]


DRIVER_CPU = 0.01
"""CPU each trial's Tune driver reserves; it only waits while its Train workers run."""


def default_max_concurrent(cluster: dict[str, float], space: SweepConfig, reserve=None) -> int:
    """Trials that fit at once: cluster CPUs (and GPUs) over what one trial reserves (workers + driver).

    Args:
        reserve: a :class:`~raykd.stages.StagePlan` whose unit must always find room beside the
            trials (a transfer-set build that running trials wait for): its CPUs and GPUs are kept
            free, so trials waiting for a set can never hold every slot the build needs.
    """
    res = space.resources
    cpus, gpus = cluster.get("CPU", 1), cluster.get("GPU", 0)
    if reserve is not None:
        cpus, gpus = max(0.0, cpus - (reserve.cpus or 0.0)), max(0.0, gpus - reserve.gpus)
    fits = [cpus // (res.num_workers * res.cpus_per_worker + DRIVER_CPU)]
    if res.use_gpu:
        fits.append(gpus // (res.num_workers * res.gpus_per_worker))
    return max(1, int(min(fits)))


def transfer_reserve(space: SweepConfig, context, cluster: dict[str, float]):
    """``stages.transfer_sets`` resolved, when this sweep's trials build transfer sets as Ray tasks; else None."""
    from raykd.stages import resolve_stage

    stage = getattr(context, "transfer_stage", None)
    if stage is None or not builds_transfer_sets(space):
        return None
    return resolve_stage(stage, cluster, cpus=space.resources.cpus_per_worker)


def builds_transfer_sets(space: SweepConfig) -> bool:
    """Whether a trial of the space can ask for a transfer set (generation, or ``augment`` with tang)."""
    from raykd.domains import Choice, Fixed

    def may_be_tang(domain) -> bool:
        return (isinstance(domain, Fixed) and domain.value == "tang") or \
            (isinstance(domain, Choice) and "tang" in domain.values)

    return "generation" in space.methods or any(may_be_tang(settings.get("augment")) for settings in space.methods.values())


def startup_trials(num_samples: int) -> int:
    """Random trials before TPE starts modelling: Optuna's 10, or half of a small budget (at least 2)."""
    return max(2, min(10, num_samples // 2))


def first_points(space: SweepConfig, num_samples: int) -> list[dict] | None:
    """The first trials take each method arm once (the rest of their settings sampled), then TPE searches.

    An arm is a method, or a method with one value of a setting the method lists in ``ARMS``
    (``vanilla`` with ``augment: none`` and with ``augment: tang``). A sweep that compares arms
    (KD against KD with augmentation, or vanilla against data-free methods) would otherwise leave
    one untried in a small budget by chance. Only when there are several arms and at least as many
    trials as arms.
    """
    from raykd.domains import Choice
    from raykd.registry import METHODS

    points = []
    for method, domains in space.methods.items():
        arms = [{}]
        for name in getattr(METHODS.load(method), "ARMS", ()):
            if isinstance(domains.get(name), Choice):
                arms = [{**arm, f"{method}/{name}": value} for arm in arms for value in domains[name].values]
        points += [{"method": method, **arm} for arm in arms]
    if len(points) < 2 or num_samples < len(points):
        return None
    return points
