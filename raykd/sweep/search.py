"""Ray Tune's OptunaSearch, with a study a user can read in optuna-dashboard.

:class:`TrackedOptunaSearch` names the study's objectives (``study.set_metric_names``: the dashboard
shows ``best_metric`` and ``student_params`` instead of ``0`` and ``1``) and gives each Optuna
trial two user attributes: ``raykd_trial_id`` (Ray Tune's trial id, the id in trials.csv) when the
trial is proposed, and ``mlflow_run_id`` (its MLflow child run) when it ends. Everything else is
Ray's ``OptunaSearch`` unchanged, including how Tune saves and restores it with the sweep.
"""

from __future__ import annotations

import warnings

from ray.tune.search.optuna import OptunaSearch

__all__ = ["TrackedOptunaSearch"]


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
