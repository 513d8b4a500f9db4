"""Keep third-party progress bars and INFO logs out of raykd's own output.

raykd prints one line per trial event and a table at the end; the libraries it drives would
otherwise add weight-loading bars (transformers), database-migration lines (MLflow), study
notices (Optuna) and experiment banners (Ray Tune) around them.
"""

from __future__ import annotations

import logging
import os

__all__ = ["quiet_libraries"]


def quiet_libraries() -> None:
    """Silence library chatter in this process (and, through the environment, in local Ray workers)."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no Tune banner or result boxes
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("mlflow", "alembic", "optuna", "ray.tune", "ray.train", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover - optuna is a dependency
        pass
