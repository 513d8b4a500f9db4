"""Search-space domains and parameter specifications.

A search space gives every tunable setting in one of three YAML forms:

- a scalar (``temperature: 2.0``): fixed, not searched;
- a list (``kd_loss: [kl, mse]``): a categorical choice;
- a mapping (``lr: {low: 1.0e-4, high: 3.0e-3, log: true}``): a numeric range, of integers for
  integer settings (optional ``step``, > 0).

Each setting is declared once, by the component that uses it, as a :class:`ParamSpec` (type,
default, allowed values or bounds, one line of help). :func:`parse_domain` checks every value a
domain can produce against its spec, so an impossible setting is refused before Ray starts.
This module is pure Python: it imports neither torch nor Ray.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

from raykd.errors import RaykdInputError

__all__ = [
    "Fixed",
    "Choice",
    "Range",
    "Domain",
    "ParamSpec",
    "parse_domain",
    "parse_params",
    "reject_unknown",
    "format_domain",
]


@dataclass(frozen=True)
class Fixed:
    """A setting that is not searched."""

    value: Any


@dataclass(frozen=True)
class Choice:
    """A categorical choice among ``values`` (at least one)."""

    values: tuple


@dataclass(frozen=True)
class Range:
    """A numeric range ``[low, high]``; integer when ``is_int``; sampled on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    is_int: bool = False


Domain = Union[Fixed, Choice, Range]


@dataclass(frozen=True)
class ParamSpec:
    """Declaration of one setting: its type, default, legal values and help.

    Attributes:
        kind: Python type of a value: ``int``, ``float``, ``str`` or ``bool``.
        default: value used when a search space omits the setting.
        help: one line shown by ``raykd validate`` and in error messages.
        choices: the allowed values of a ``str`` setting.
        low, high: bounds of a numeric setting; ``low_open``/``high_open`` make them strict.
        searchable: False for settings that must be one fixed value.
    """

    kind: type
    default: Any
    help: str = ""
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    searchable: bool = True

    def check(self, value: Any, where: str) -> Any:
        """Return ``value`` converted to ``kind``.

        Raises:
            RaykdInputError: the value has the wrong type or lies outside the legal values.
        """
        value = _coerce(value, self.kind, where)
        if self.choices is not None and value not in self.choices:
            options = ", ".join(map(str, self.choices))
            raise RaykdInputError(f"{where}: {value!r} is not one of {options}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            bound = ">" if self.low_open else ">="
            raise RaykdInputError(f"{where} must be {bound} {self.low}, got {value}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            bound = "<" if self.high_open else "<="
            raise RaykdInputError(f"{where} must be {bound} {self.high}, got {value}")
        return value


def _coerce(value: Any, kind: type, where: str) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str:
        if isinstance(value, str):
            return value
    shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value)
    raise RaykdInputError(f"{where}: expected {kind.__name__}, got {shown}")


def parse_domain(raw: Any, spec: ParamSpec, where: str) -> Domain:
    """Turn a YAML value into a checked :data:`Domain`.

    Args:
        raw: the YAML value: scalar, list or ``{low, high, log, step}`` mapping.
        spec: the setting's declaration.
        where: dotted location used in error messages, e.g. ``methods.vanilla.temperature``.

    Raises:
        RaykdInputError: empty choice list, malformed range, a value outside the legal ones, or
            a list/range for a setting that cannot be searched.
    """
    if isinstance(raw, list):
        if not raw:
            raise RaykdInputError(f"{where}: empty choice list; give at least one value")
        _require_searchable(spec, where)
        values = tuple(spec.check(v, f"{where}[{i}]") for i, v in enumerate(raw))
        return Fixed(values[0]) if len(set(values)) == 1 else Choice(values)
    if isinstance(raw, Mapping):
        _require_searchable(spec, where)
        return _parse_range(raw, spec, where)
    return Fixed(spec.check(raw, where))


def _require_searchable(spec: ParamSpec, where: str) -> None:
    if not spec.searchable:
        raise RaykdInputError(f"{where} cannot be searched; give one value")


def _parse_range(raw: Mapping, spec: ParamSpec, where: str) -> Range:
    reject_unknown(raw, ("low", "high", "log", "step"), where)
    if "low" not in raw or "high" not in raw:
        raise RaykdInputError(f"{where}: a range needs both 'low' and 'high', e.g. {{low: 1, high: 4}}")
    if spec.kind not in (int, float):
        raise RaykdInputError(f"{where}: a {spec.kind.__name__} setting takes a list of choices, not a range")
    low = spec.check(raw["low"], f"{where}.low")
    high = spec.check(raw["high"], f"{where}.high")
    if not low < high:
        raise RaykdInputError(f"{where}: low ({low}) must be smaller than high ({high})")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise RaykdInputError(f"{where}.log must be true or false, got {log!r}")
    if log and low <= 0:
        raise RaykdInputError(f"{where}: a log range needs low > 0, got {low}")
    step = raw.get("step")
    if step is not None:
        if log:
            raise RaykdInputError(f"{where}: use either 'log' or 'step', not both")
        step = ParamSpec(spec.kind, None, low=0, low_open=True).check(step, f"{where}.step")
    return Range(low, high, log=log, step=step, is_int=spec.kind is int)


def domain_values(domain: Domain) -> tuple:
    """The distinct values a domain can produce (a range gives its two bounds)."""
    if isinstance(domain, Fixed):
        return (domain.value,)
    if isinstance(domain, Choice):
        return domain.values
    return (domain.low, domain.high)


def parse_params(raw: Mapping | None, specs: Mapping[str, ParamSpec], where: str) -> dict[str, Domain]:
    """Parse a mapping of settings against their specs, filling defaults for omitted ones.

    Raises:
        RaykdInputError: an unknown key (with the closest valid name), or a bad value.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise RaykdInputError(f"{where} must be a mapping of settings, got {type(raw).__name__}")
    reject_unknown(raw, specs, where)
    return {
        name: parse_domain(raw[name], spec, f"{where}.{name}") if name in raw else Fixed(spec.default)
        for name, spec in specs.items()
    }


def reject_unknown(raw: Mapping, known: Iterable[str], where: str) -> None:
    """Raise on the first key of ``raw`` not in ``known``, suggesting the closest known key.

    Raises:
        RaykdInputError: naming the unknown key and the valid ones.
    """
    known = list(known)
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(known)}"
            prefix = f"{where}." if where else ""
            raise RaykdInputError(f"unknown key '{prefix}{key}'; {hint}")


def format_domain(domain: Domain) -> str:
    """Human-readable form of a domain, for ``raykd validate``."""
    if isinstance(domain, Fixed):
        return repr(domain.value)
    if isinstance(domain, Choice):
        return "one of " + ", ".join(map(repr, domain.values))
    scale = " (log)" if domain.log else ""
    step = f" step {domain.step}" if domain.step else ""
    kind = "int" if domain.is_int else "float"
    return f"{kind} in [{domain.low}, {domain.high}]{scale}{step}"
