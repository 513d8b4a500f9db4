"""The search spaces that ship with raykd (``search_spaces/``): list them, and find one by name.

``raykd spaces`` prints them; ``--space sst2_demo`` (no such file) means the bundled
``search_spaces/sst2_demo.yaml``. Their data and teacher paths are relative to the current
folder (``../shared/...``); adapt them without copying the file with ``--set``, e.g.
``--set data.glue_dir=/data/glue_data --set teacher.path=/models/my-teacher``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["BundledSpace", "bundled_spaces", "bundled_dir", "resolve_space"]


@dataclass(frozen=True)
class BundledSpace:
    """A bundled search space.

    Attributes:
        name: the file name without ``.yaml`` (what ``--space`` accepts).
        path: the YAML file.
        summary: its first comment line.
        task: the task it distils.
        methods: the methods it compares.
    """

    name: str
    path: Path
    summary: str
    task: str
    methods: tuple[str, ...]


def bundled_dir() -> Path:
    """The ``search_spaces/`` folder beside the package (a source checkout or editable install)."""
    return Path(__file__).resolve().parents[1] / "search_spaces"


def bundled_spaces() -> list[BundledSpace]:
    """Every bundled space, by name (empty when the folder is not there, e.g. a wheel install)."""
    from raykd.yamlfile import read_yaml

    spaces = []
    for path in sorted(bundled_dir().glob("*.yaml")):
        raw, text = read_yaml(path)
        comment = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
        methods = raw.get("methods") or {}
        spaces.append(BundledSpace(name=path.stem, path=path, summary=comment, task=str(raw.get("task") or ", ".join(raw.get("tasks") or []) or "?"),
                                   methods=tuple(methods if isinstance(methods, (dict, list)) else ())))
    return spaces


def resolve_space(path: str | Path) -> Path:
    """``path`` if it is a file, else the bundled space of that name (``sst2_demo`` or ``sst2_demo.yaml``).

    Raises:
        RaykdInputError: neither a file nor a bundled space; the message lists the bundled names.
    """
    from raykd.errors import RaykdInputError

    given = Path(path)
    if given.is_file():
        return given
    by_name = {space.name: space.path for space in bundled_spaces()}
    name = given.name.removesuffix(".yaml").removesuffix(".yml")
    if given.parent == Path(".") and name in by_name:
        return by_name[name]
    names = ", ".join(by_name) or "none found"
    raise RaykdInputError(f"search space {path} does not exist; give the path of a YAML file, or the name of a "
                          f"bundled space ({names}; see raykd spaces)")
