"""Name -> implementation registries for methods and student families.

A search space names methods and students by registered words (``vanilla``, ``bilstm``); the word,
the module file name and the YAML value are the same. Entries are import paths resolved on first
use, so listing names imports nothing heavy. There is no import-time self-registration.

A registered module exposes ``PARAMS: dict[str, ParamSpec]`` (its searchable settings) and the
builder its kind needs (``build`` for students, ``make_method`` for methods).
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from raykd.errors import RaykdInputError

__all__ = ["METHODS", "STUDENTS", "Registry", "uses_task_train_data"]


class Registry:
    """A lazy mapping from a registered name to the module implementing it.

    Args:
        kind: what the entries are, for messages ("method", "student").
        entries: name -> dotted module path.
    """

    def __init__(self, kind: str, entries: dict[str, str]):
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def check(self, name: str, where: str = "") -> str:
        """Return ``name`` if registered.

        Raises:
            RaykdInputError: unknown name; the message lists valid names and the closest one.
        """
        if name in self._entries:
            return name
        close = difflib.get_close_matches(str(name), self.names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        at = f"{where}: " if where else ""
        raise RaykdInputError(
            f"{at}unknown {self.kind} '{name}'{hint}; valid {self.kind}s: {', '.join(self.names())}"
        )

    def load(self, name: str) -> ModuleType:
        """Import and return the module registered as ``name``.

        Raises:
            RaykdInputError: unknown name.
        """
        return importlib.import_module(self._entries[self.check(name)])


METHODS = Registry("method", {
    "vanilla": "raykd.methods.vanilla",
    "supervised": "raykd.methods.supervised",
    "generation": "raykd.methods.generation",
    "zero_shot": "raykd.methods.zero_shot",
    "random_tokens": "raykd.methods.random_tokens",
    "as_dfd": "raykd.methods.as_dfd",
    "multitask": "raykd.methods.multitask",
})


def uses_task_train_data(method: str) -> bool:
    """Whether method ``method`` trains on the task's training split (False for data-free methods)."""
    return bool(getattr(METHODS.load(method), "USES_TASK_TRAIN_DATA", True))
STUDENTS = Registry(
    "student",
    {"bilstm": "raykd.students.bilstm", "transformer": "raykd.students.transformer"},
)
