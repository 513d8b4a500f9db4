"""Errors raykd raises for bad user input.

Every problem a user can fix (a typo in a search space, a missing file, a teacher whose labels do
not match the task) raises :class:`RaykdInputError` with one line saying what is wrong and how to
fix it. The command line turns it into that line on stderr and exit code 2.
"""

from __future__ import annotations

__all__ = ["RaykdInputError", "RaykdStageError", "NonFiniteLossError"]


class RaykdInputError(ValueError):
    """Bad input from the user: a search space, a data file, a teacher folder, a CLI option."""


class RaykdStageError(RuntimeError):
    """A stage before the trials produced something a sweep cannot use (a fine-tuned teacher no better
    than the majority class). Not an input error: no check could know it before the stage ran. The
    command line prints it as one line and exits with code 1; what the stage cached stays cached."""


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the trial is marked failed with this reason."""
