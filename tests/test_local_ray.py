"""The local Ray instance raykd starts for a sweep: Ray Train settings for one machine.

Without ``--address`` raykd starts its own instance and gives its raylet (so every worker)
:data:`raykd.sweep.run.LOCAL_TRAIN_SETTINGS`: no Ray Train preemption watcher per trial, and a
0.5 s worker poll (a value the user's environment sets is kept: tests/test_ray_loopback.py).
``benchmarks/trial_startup.py`` measures what that saves.
"""

import pytest


@pytest.mark.ray
def test_a_local_sweep_runs_without_preemption_watchers(method_sweep):
    *_, actors = method_sweep  # a real 4-trial sweep on a local instance (tests/conftest.py)
    assert {"RayTrainWorker", "TrainController"} <= actors  # the listing sees Ray Train's actors...
    assert "PreemptionWatcher" not in actors  # ...and none of the watchers one machine never needs
