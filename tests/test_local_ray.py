"""The local Ray instance raykd starts for a sweep: Ray Train settings for one machine.

Without ``--address`` raykd starts its own instance and gives its raylet (so every worker)
:data:`raykd.sweep.run.LOCAL_TRAIN_SETTINGS`: no Ray Train preemption watcher per trial, and a
0.5 s worker poll. ``benchmarks/trial_startup.py`` measures what that saves.
"""

import pytest


def test_local_train_settings_leave_what_the_user_set(monkeypatch):
    from raykd.sweep.run import LOCAL_TRAIN_SETTINGS, local_train_settings

    for name in LOCAL_TRAIN_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    assert local_train_settings() == LOCAL_TRAIN_SETTINGS
    monkeypatch.setenv("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "5")
    assert local_train_settings() == {"RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0"}


@pytest.mark.ray
def test_a_local_sweep_runs_without_preemption_watchers(method_sweep):
    *_, actors = method_sweep  # a real 4-trial sweep on a local instance (tests/conftest.py)
    assert {"RayTrainWorker", "TrainController"} <= actors  # the listing sees Ray Train's actors...
    assert "PreemptionWatcher" not in actors  # ...and none of the watchers one machine never needs
