"""The sampler's first draws, known before a sweep runs (:func:`raykd.sweep.search.first_draws`): the
cost estimate prices those trials by their own architecture, so the replay must be the sweep's own."""

import optuna
import pytest
from ray.tune.utils.util import flatten_dict

from raykd.sweep.search import first_draws
from raykd.sweep.trial_plan import startup_trials

pytestmark = pytest.mark.ray


def test_the_first_draws_are_the_trials_the_sweep_ran(method_sweep):
    """Replay the shared 4-trial sweep's space: the first start-up draws equal its Optuna trials 0 and 1,
    settings and sampled floats alike (the learning rate is a log-uniform draw)."""
    from raykd.config import load_space

    storage, outcome, _, _ = method_sweep
    study = optuna.load_study(study_name=outcome.sweep_dir.name, storage=f"sqlite:///{outcome.sweep_dir / 'optuna.db'}")
    ran = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    space = load_space(outcome.sweep_dir / "space.yaml")  # the space as the sweep saved it
    drawn = first_draws(space, len(ran))
    assert len(drawn) == startup_trials(len(ran)) == 2
    for trial, config in zip(ran, drawn):
        flat = flatten_dict(config, delimiter="/")
        assert trial.params, trial.number
        assert {name: flat.get(name) for name in trial.params} == trial.params
