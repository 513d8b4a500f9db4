"""Ray Tune's OptunaSearch, with a study a user can read in optuna-dashboard.

:class:`TrackedOptunaSearch` names the study's objectives (``study.set_metric_names``: the dashboard
shows ``best_metric`` and ``student_params`` instead of ``0`` and ``1``) and gives each Optuna
trial two user attributes: ``raykd_trial_id`` (Ray Tune's trial id, the id in trials.csv) when the
trial is proposed, and ``mlflow_run_id`` (its MLflow child run) when it ends. Everything else is
Ray's ``OptunaSearch`` unchanged, including how Tune saves and restores it with the sweep.

:func:`sweep_searcher` builds the sweep's searcher (sampler, objectives, first points) in one place,
so the cost estimate's :func:`first_draws` asks the very searcher a sweep will ask.
"""

from __future__ import annotations

import warnings

from ray.tune.search.optuna import OptunaSearch

__all__ = ["TrackedOptunaSearch", "sweep_searcher", "first_draws"]


class TrackedOptunaSearch(OptunaSearch):
    """``OptunaSearch`` whose study names its objectives and links its trials to raykd trials and MLflow runs.

    Args:
        *args, **kwargs: as for ``ray.tune.search.optuna.OptunaSearch``; ``metric`` (a list) also
            becomes the study's metric names.
        tracker: the sweep's :class:`~raykd.tracking.mlflow.SweepTracker`, to look up each trial's
            MLflow run (None: no ``mlflow_run_id`` attribute).
    """

    def __init__(self, *args, tracker=None, **kwargs):
        self._tracker = tracker
        super().__init__(*args, **kwargs)

    def _setup_study(self, mode):
        super()._setup_study(mode)
        names = self._metric if isinstance(self._metric, list) else [self._metric]
        if self._ot_study.metric_names is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # experimental in some Optuna releases
                self._ot_study.set_metric_names(list(names))

    def suggest(self, trial_id: str):
        params = super().suggest(trial_id)
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and "raykd_trial_id" not in ot_trial.user_attrs:
            ot_trial.set_user_attr("raykd_trial_id", trial_id)
        return params

    def on_trial_complete(self, trial_id: str, result=None, error: bool = False):
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and self._tracker is not None and trial_id not in self._completed_trials:
            run_id = self._tracker.child_runs().get(trial_id)
            if run_id:
                ot_trial.set_user_attr("mlflow_run_id", run_id)
        super().on_trial_complete(trial_id, result=result, error=error)


def sweep_searcher(space, num_samples: int, *, storage=None, study_name: str | None = None,
                   tracker=None) -> TrackedOptunaSearch:
    """The searcher a sweep of ``space`` runs: multi-objective TPE seeded with ``space.seed``, random for
    :func:`~raykd.sweep.trial_plan.startup_trials` finished trials, the method arms first.

    Args:
        space: the parsed :class:`~raykd.config.SweepConfig`.
        num_samples: trials the sweep runs.
        storage: an Optuna storage (the sweep's ``optuna.db``); None: in memory.
        study_name: the study's name (the sweep folder's); tracker: as :class:`TrackedOptunaSearch`.
    """
    import optuna

    from raykd.sweep.space import DefineByRun
    from raykd.sweep.trial_plan import first_points, startup_trials
    from raykd.trial.plan import OBJECTIVES

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=space.seed, multivariate=True, group=True, constant_liar=True,
                                             n_startup_trials=startup_trials(num_samples))
    return TrackedOptunaSearch(
        space=DefineByRun(space), metric=[m for m, _ in OBJECTIVES], mode=[d for _, d in OBJECTIVES],
        sampler=sampler, study_name=study_name, points_to_evaluate=first_points(space, num_samples),
        storage=storage, tracker=tracker)


def first_draws(space, num_samples: int) -> list[dict]:
    """The configs of the trials a new sweep of ``space`` starts with, as Tune will hand them to the trials.

    Until :func:`~raykd.sweep.trial_plan.startup_trials` trials have finished, the seeded TPE draws at
    random from its own random state, so the first that many draws do not depend on any result: they
    are asked here from an in-memory copy of the sweep's searcher (nothing is written). Later draws
    follow the results and are not predicted.

    Returns:
        ``min(startup_trials(num_samples), num_samples)`` nested configs (``{"method": ..., "student": ...,
        "<student>": {...}, ...}``), in the order the sweep will start them.
    """
    import optuna

    from raykd.sweep.trial_plan import startup_trials

    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        searcher = sweep_searcher(space, num_samples)
        return [searcher.suggest(f"draw{i}") for i in range(min(startup_trials(num_samples), num_samples))]
    finally:
        optuna.logging.set_verbosity(previous)
