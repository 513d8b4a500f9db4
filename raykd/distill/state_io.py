"""Save nested training state as JSON plus a safetensors file, and read it back without pickle.

A state tree (an optimiser's or scheduler's ``state_dict()``, a data-free trainer's state, the
loop's counters) is written as two files: the tensors go into a safetensors file and everything
else into a JSON document that points at them by name. Reading either file runs no code, so a
checkpoint folder someone else wrote can be loaded without trusting it.

What a tree may hold, and how the JSON records what plain JSON cannot:

- ``None``, ``bool``, ``str``, ``list``, finite ``float`` and ``int`` as themselves (an int beyond
  2**53, such as a 128-bit numpy PCG64 state, as ``{"$int": "<digits>"}`` so that other JSON readers
  keep every digit);
- NaN and +-inf as ``{"$float": "nan" | "inf" | "-inf"}``;
- ``torch.Tensor`` (any device; read back on the CPU) as ``{"$tensor": name}``;
- ``numpy.ndarray`` and numpy scalars as ``{"$ndarray": name}`` (``"scalar": true`` for a scalar),
  stored in the safetensors file through torch, so any dtype torch has (bool, ints, uints, floats);
- ``tuple`` as ``{"$tuple": [...]}``;
- a mapping with ``str`` keys (none starting with ``$``) as a JSON object; any other mapping, such as an
  optimiser's ``{param_id: state}``, as ``{"$dict": [[key, value], ...]}``, keys keeping their type;
  a ``state_dict()``'s ``_metadata`` (module versions) comes back as well (``"$metadata"``).

Every mapping is read back as a ``dict`` (an ``OrderedDict`` when it had ``_metadata``), in order.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

__all__ = ["FORMAT", "load_state_tree", "save_state_tree"]

FORMAT = "raykd-state-tree/1"
"""The JSON document's ``format`` field; a file without it is refused."""

_EXACT_INT = 2**53  # beyond it a JSON number loses digits in most readers (doubles)


def save_state_tree(tree: Any, json_path: str | Path, tensors_path: str | Path) -> None:
    """Write ``tree`` as a JSON document (``json_path``) and its tensors (``tensors_path``).

    Raises:
        TypeError: the tree holds a value of another type (the message names where it is).
    """
    tensors: dict[str, torch.Tensor] = {}
    document = {"format": FORMAT, "tree": _encode(tree, "", tensors)}
    save_file(tensors, str(tensors_path))
    Path(json_path).write_text(json.dumps(document, allow_nan=False, indent=1) + "\n")


def load_state_tree(json_path: str | Path, tensors_path: str | Path) -> Any:
    """Read back a tree written by :func:`save_state_tree` (tensors on the CPU).

    Raises:
        ValueError: the files are not such a pair (wrong format field, an unknown tag, a tensor
            name that the safetensors file lacks, a mapping key that cannot be a key).
    """
    document = json.loads(Path(json_path).read_text())
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a {FORMAT} document")
    return _decode(document["tree"], load_file(str(tensors_path)), str(json_path))


def _encode(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, torch.Tensor):
        return {"$tensor": _store(tensors, path, value.detach().to("cpu", copy=True).contiguous())}
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.array(value, copy=True, order="C")  # a scalar stays 0-d
        try:
            tensor = torch.from_numpy(array)
        except (TypeError, ValueError) as err:
            raise TypeError(f"state at {path or '<root>'}: cannot store a numpy {array.dtype} array ({err})") from None
        entry = {"$ndarray": _store(tensors, path, tensor)}
        return {**entry, "scalar": True} if isinstance(value, np.generic) else entry
    if isinstance(value, int):
        return value if abs(value) <= _EXACT_INT else {"$int": str(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{path}/{i}", tensors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return _encode_mapping(value, path, tensors)
    raise TypeError(f"state at {path or '<root>'}: cannot store a {type(value).__qualname__} "
                    "(tensors, arrays, numbers, strings, None, lists, tuples and mappings only)")


def _encode_mapping(value: Mapping, path: str, tensors: dict[str, torch.Tensor]) -> dict:
    metadata = getattr(value, "_metadata", None)
    plain = metadata is None and all(isinstance(k, str) and not k.startswith("$") for k in value)
    if plain:
        return {k: _encode(v, f"{path}/{k}", tensors) for k, v in value.items()}
    pairs = [[_encode(k, f"{path}/<key>", tensors), _encode(v, f"{path}/{k}", tensors)] for k, v in value.items()]
    entry: dict[str, Any] = {"$dict": pairs}
    if metadata is not None:
        entry["$metadata"] = _encode(metadata, f"{path}/<metadata>", tensors)
    return entry


def _store(tensors: dict[str, torch.Tensor], path: str, tensor: torch.Tensor) -> str:
    base = name = path.lstrip("/") or "<root>"
    count = 1
    while name in tensors:  # two keys that print alike (1 and "1")
        name, count = f"{base}#{count}", count + 1
    tensors[name] = tensor
    return name


_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _decode(node: Any, tensors: dict[str, torch.Tensor], source: str) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors, source) for v in node]
    if not isinstance(node, dict):
        return node
    tags = [k for k in node if k.startswith("$")]
    if not tags:
        return {k: _decode(v, tensors, source) for k, v in node.items()}
    tag = tags[0] if len(tags) == 1 else "$dict"
    try:
        return _decode_tagged(tag, node, tensors, source)
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{source}: bad {tag} entry {json.dumps(node)[:200]} ({err!r})") from None


def _decode_tagged(tag: str, node: dict, tensors: dict[str, torch.Tensor], source: str) -> Any:
    if tag == "$tensor":
        return tensors[node["$tensor"]]
    if tag == "$ndarray":
        array = tensors[node["$ndarray"]].numpy()
        return array[()] if node.get("scalar") else array
    if tag == "$int":
        return int(node["$int"])
    if tag == "$float":
        return _FLOATS[node["$float"]]
    if tag == "$tuple":
        return tuple(_decode(v, tensors, source) for v in node["$tuple"])
    if tag == "$dict":
        items = [(_decode(k, tensors, source), _decode(v, tensors, source)) for k, v in node["$dict"]]
        if "$metadata" not in node:
            return dict(items)
        mapping = OrderedDict(items)
        mapping._metadata = _decode(node["$metadata"], tensors, source)  # what Module.load_state_dict reads
        return mapping
    raise ValueError(f"unknown tag {tag}")
