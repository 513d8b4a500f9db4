"""The accuracy-vs-size Pareto front and its hypervolume, in plain numpy.

Two objectives: the student's metric (higher is better) and its parameter count (lower is better).
The filter follows optuna's ``optuna/study/_multi_objective.py``: deduplicate and lexsort the
points, keep each point whose parameters-sorted running best strictly improves, map back.
"""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask", "hypervolume"]


def _as_pair(metric: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    metric = np.asarray(metric, dtype=float)
    params = np.asarray(params, dtype=float)
    if metric.ndim != 1 or metric.shape != params.shape:
        raise ValueError(
            f"metric and params must be 1-D arrays of one length, got shapes {metric.shape} "
            f"and {params.shape}"
        )
    return metric, params


def pareto_mask(metric: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Which points are on the Pareto front.

    A point is on the front when no other point is at least as good in both objectives and
    strictly better in one. Duplicated points are all kept; a point with a NaN or infinite
    metric or parameter count is never on the front and dominates nothing.

    Args:
        metric: ``[N]`` metric of each point, higher is better.
        params: ``[N]`` parameters of each point, lower is better (any unit).

    Returns:
        ``[N]`` bool, True for the non-dominated points.

    Raises:
        ValueError: the arrays are not 1-D or differ in length.
    """
    metric, params = _as_pair(metric, params)
    mask = np.zeros(metric.shape, dtype=bool)
    valid = np.isfinite(metric) & np.isfinite(params)
    if not valid.any():
        return mask
    # Both objectives as losses; +0.0 turns -0.0 into 0.0 so equal points deduplicate.
    losses = np.column_stack([params[valid], -metric[valid] + 0.0])
    unique, inverse = np.unique(losses, axis=0, return_inverse=True)
    # unique is sorted by params then loss: a point is on the front iff its loss beats every
    # point before it (those have fewer params, or the same params and a lower loss).
    running_best = np.minimum.accumulate(unique[:, 1])
    on_front = np.ones(len(unique), dtype=bool)
    on_front[1:] = running_best[1:] < running_best[:-1]
    mask[valid] = on_front[inverse.reshape(-1)]
    return mask


def hypervolume(
    metric: np.ndarray, params: np.ndarray, *, ref_metric: float, ref_params: float
) -> float:
    """Area of the objective space the points dominate inside a reference box.

    The box is ``metric >= ref_metric, params <= ref_params``; each point inside it dominates
    the rectangle ``[params, ref_params] x [ref_metric, metric]`` and the result is the area of
    their union. Points outside the box (or with NaN values) contribute nothing, and dominated
    points leave the result unchanged.

    Args:
        metric: ``[N]`` metric of each point, higher is better.
        params: ``[N]`` parameters of each point, lower is better; callers pass a fraction of
            the teacher's parameters so that ``ref_params = 1.0``.
        ref_metric: the worst metric that still counts (e.g. the majority-class baseline).
        ref_params: the largest parameter count that still counts, in the unit of ``params``.

    Returns:
        The dominated area, in metric x ``params`` units; 0.0 for no point inside the box.

    Raises:
        ValueError: the arrays are not 1-D or differ in length.
    """
    metric, params = _as_pair(metric, params)
    inside = (metric >= ref_metric) & (params <= ref_params)
    order = np.argsort(params[inside], kind="stable")
    xs, ys = params[inside][order], metric[inside][order]
    # Sweeping params upwards, the attained metric is the best seen so far (a staircase).
    widths = np.diff(np.append(xs, ref_params))
    heights = np.maximum.accumulate(ys) - ref_metric
    return float(np.sum(widths * heights))


def scaled_hypervolume(metric: np.ndarray, params: np.ndarray, scale: float | None, ref_metric: float) -> float:
    """Hypervolume of a front with parameters as a fraction of ``scale`` (the teacher's size), reference
    point ``(ref_metric, 1.0)``; 0.0 for an empty front or a missing / non-positive scale."""
    if len(metric) == 0 or scale is None or not np.isfinite(scale) or scale <= 0:
        return 0.0
    return hypervolume(np.asarray(metric, dtype=float), np.asarray(params, dtype=float) / float(scale),
                       ref_metric=ref_metric, ref_params=1.0)
