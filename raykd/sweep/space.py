"""The search space as an Optuna define-by-run function, so conditional settings work.

A trial first picks a method and a student family; only that method's and that family's settings
are then sampled, under names prefixed by the component (``vanilla/temperature``,
``bilstm/hidden_dim``), which Ray nests into ``config["vanilla"]["temperature"]``. Prefixes keep
two families' settings of the same name (``num_layers``) apart, as Optuna needs one distribution
per name. Training settings a student family overrides are sampled under ``<family>/training/<name>``.
Fixed settings are returned as constants and not sampled. A student family may also
A method or student family may declare conditional settings with ``active(chosen) -> set[str]``
(the transformer's width settings only exist for random initialisation; ``temperature`` only for
the ``kl`` discrepancy); settings are visited in the order their module declares them.
"""

from __future__ import annotations

from typing import Any

from raykd.config import SweepConfig
from raykd.domains import Choice, Domain, Fixed, Range
from raykd.registry import METHODS, STUDENTS

__all__ = ["DefineByRun", "sample"]


def sample(trial, name: str, domain: Domain) -> Any:
    """Sample one setting from an Optuna trial (fixed values are returned as they are)."""
    if isinstance(domain, Fixed):
        return domain.value
    if isinstance(domain, Choice):
        return trial.suggest_categorical(name, list(domain.values))
    assert isinstance(domain, Range)
    if domain.is_int:
        return trial.suggest_int(name, int(domain.low), int(domain.high), step=int(domain.step or 1), log=domain.log)
    return trial.suggest_float(name, domain.low, domain.high, step=domain.step, log=domain.log)


def _pick(trial, name: str, options: list[str]) -> str:
    return options[0] if len(options) == 1 else trial.suggest_categorical(name, options)


def _component(trial, prefix: str, domains: dict[str, Domain], constants: dict, active=None) -> None:
    """Sample a component's settings; fixed ones go into ``constants`` as ``prefix/name``."""
    chosen: dict[str, Any] = {}
    for name in domains:  # declaration order: a setting comes after those deciding whether it exists
        if active is not None and name not in active(chosen):
            continue
        chosen[name] = sample(trial, f"{prefix}/{name}", domains[name])
        if isinstance(domains[name], Fixed):
            constants[f"{prefix}/{name}"] = chosen[name]


class DefineByRun:
    """The callable OptunaSearch invokes with an ``optuna.Trial`` for every new Tune trial.

    A class rather than a closure because Tune pickles the searcher (with this function) into
    its experiment checkpoint, which is what lets a sweep resume.

    Args:
        space: the parsed search space.
    """

    def __init__(self, space: SweepConfig):
        self.space = space

    def __call__(self, trial) -> dict:
        """Sample a trial.

        Returns:
            The constant (not searched) settings with flat ``/`` keys; Ray merges them with the
            sampled ones and nests the result: ``{"method": "vanilla", "vanilla": {...},
            "student": "bilstm", "bilstm": {...}, "lr": ...}``.
        """
        space = self.space
        constants: dict[str, Any] = {}
        method = _pick(trial, "method", list(space.methods))
        student = _pick(trial, "student", list(space.students))
        constants.update({"method": method, "student": student})
        _component(trial, method, space.methods[method], constants,
                   getattr(METHODS.load(method), "active", None))
        _component(trial, student, space.students[student], constants,
                   getattr(STUDENTS.load(student), "active", None))
        own = space.student_training.get(student, {})
        for name, domain in space.training.items():
            key = f"{student}/training/{name}" if name in own else name
            domain = own.get(name, domain)
            value = sample(trial, key, domain)
            if isinstance(domain, Fixed):
                constants[key] = value
        return constants
