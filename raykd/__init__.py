"""raykd: find the best small NLP students a fine-tuned teacher can be distilled into.

The pipeline, in import order (nothing earlier imports anything later):
data -> teachers -> transfer -> students -> losses/methods -> distill -> trial (Ray Train)
-> sweep (Ray Tune + Optuna) -> tracking (MLflow) -> report (Pareto front).

``import raykd`` is deliberately light: it imports neither torch, Ray nor MLflow.
Use ``raykd.sweep.run_sweep`` from Python, or the ``raykd`` command line.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
