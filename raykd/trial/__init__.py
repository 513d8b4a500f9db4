"""One trial = one distillation run on Ray Train workers. The only package that calls ``ray.train``."""

from raykd.trial.plan import TrialContext

__all__ = ["TrialContext"]
