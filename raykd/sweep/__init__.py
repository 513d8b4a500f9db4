"""Sweeps: a search space run by Ray Tune with Optuna's multi-objective search.

``run_sweep`` is imported lazily so that ``import raykd.sweep`` stays light.
"""

__all__ = ["run_sweep"]


def __getattr__(name):
    if name == "run_sweep":
        from raykd.sweep.run import run_sweep

        return run_sweep
    raise AttributeError(name)
