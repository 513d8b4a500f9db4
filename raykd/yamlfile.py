"""Search-space files as text: read strictly (UTF-8, safe YAML types, no key written twice).

Both :mod:`raykd.config` (parsing a space) and :mod:`raykd.spaces` (listing the bundled ones) read
files through :func:`read_yaml`, so a file that one accepts the other accepts too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from raykd.errors import RaykdInputError

__all__ = ["read_yaml", "parse_yaml"]


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key (a list); construct_mapping explains it
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' is written twice in one mapping (first at line {first}); keep one",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_yaml(text: str, where: str) -> Any:
    """Parse YAML text strictly: safe types only, no duplicate keys.

    Raises:
        RaykdInputError: malformed YAML or a duplicate key, with line and column.
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark, opened = getattr(err, "problem_mark", None), getattr(err, "context_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        context = getattr(err, "context", None)
        if context and opened is not None and (mark is None or opened.line != mark.line):
            problem += f" ({context} at line {opened.line + 1}, column {opened.column + 1})"
        raise RaykdInputError(f"malformed YAML in {where}{at}: {problem}; fix the syntax") from None


def read_yaml(path: str | Path) -> tuple[dict, str]:
    """Read a YAML mapping; return ``(mapping, text)``.

    Raises:
        RaykdInputError: missing or unreadable file, text that is not UTF-8, malformed YAML
            (with line and column), a key written twice, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise RaykdInputError(f"search space {path} does not exist; give the path of a YAML file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RaykdInputError(f"search space {path} cannot be read ({err.strerror}); check its permissions") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise RaykdInputError(f"search space {path} is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}); "
                              "save it as UTF-8") from None
    raw = parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise RaykdInputError(f"{path} must hold a YAML mapping with keys such as task, data, teacher, methods, students")
    return raw, text
