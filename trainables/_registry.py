"""The one registry mechanism: a ``dict[str, callable]`` filled by a ``register`` decorator.

Every extension point (data sources, augmentation ops, masking strategies,
loss terms, objectives, probes, encoders; Optuna samplers and pruners; Tune
schedulers and loggers) is a :class:`Registry`. An entry is a function whose
keyword arguments, less the ones the registry passes itself (``reserved``),
are the options a spec may set; ``register(name, **metadata)`` attaches what
the rest of the system needs to know about it (a probe's metrics and their
directions, an objective's loss terms), so no parallel table is kept by hand.
Unknown names raise :class:`UnknownNameError`, listing the valid ones with a
did-you-mean.

Example:
    >>> PROBES = Registry("probe", reserved=("feats",))
    >>> @PROBES.register("zero", metrics={"zero": "maximize"})
    ... def zero(feats, *, scale=1.0):
    ...     return {"zero": 0.0}
    >>> sorted(PROBES), PROBES.meta("zero")["metrics"], PROBES.options("zero")
    (['zero'], {'zero': 'maximize'}, {'scale': 1.0})
    >>> PROBES.lookup("zeor")
    Traceback (most recent call last):
    ...
    trainables._registry.UnknownNameError: unknown probe 'zeor' (did you mean 'zero'?); valid: zero
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from trainables.errors import SSLSearchError

__all__ = ["REQUIRED", "Registry", "UnknownNameError", "check_value", "lookup", "suggest"]

F = TypeVar("F", bound=Callable)

REQUIRED = "<required>"
"""The default :meth:`Registry.options` shows for an option without one."""


class UnknownNameError(SSLSearchError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def suggest(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or ``""``.

    Example:
        >>> suggest("ranodm", ["random", "block"])
        " (did you mean 'random'?)"
    """
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    odd = [c for c in name if not c.isascii()]
    if odd:  # a look-alike letter (Cyrillic 'а' for 'a') reads as the valid name
        chars = ", ".join(f"'{c}' U+{ord(c):04X}" for c in dict.fromkeys(odd))
        hint = f"; it has non-ASCII {chars}"
        return f" (did you mean '{close[0]}'{hint}?)" if close else f" ({hint[2:]})"
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(dict[str, F]):
    """Name -> function, with per-entry metadata and the options each takes.

    Args:
        kind: what an entry is, for messages (``masking strategy``).
        reserved: the arguments the registry's caller passes itself; every
            other keyword argument of an entry is an option a spec may set.
    """

    def __init__(self, kind: str, *, reserved: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.kind = kind
        self.reserved = reserved
        self._meta: dict[str, dict[str, Any]] = {}

    def register(
        self,
        name: str,
        *,
        limits: Mapping[str, Any] | None = None,
        ordered: Sequence[tuple[str, str]] = (),
        **metadata: Any,
    ) -> Callable[[F], F]:
        """Decorator: register the function under ``name`` with ``metadata``.

        ``limits`` bounds options' values: an interval (``"(0, inf)"``, ``"[0, 1]"``)
        or a tuple of the allowed values; they are checked with the option's type
        (its annotation) before any trial runs. ``ordered`` pairs of options
        ``(low, high)`` must hold ``low <= high`` (``("sigma_min", "sigma_max")``),
        checked the same way.
        """
        limits = dict(limits or {})
        for limit in limits.values():
            if isinstance(limit, str):
                _interval(limit)  # a malformed interval fails at import, not in a study
        pairs = [list(pair) for pair in ordered]

        def decorator(fn: F) -> F:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            named = set(limits) | {option for pair in pairs for option in pair}
            unknown = named - set(inspect.signature(fn).parameters)
            if unknown:
                raise ValueError(
                    f"{self.kind} '{name}': limits or order of no option: {sorted(unknown)}"
                )
            self[name] = fn
            self._meta[name] = {
                **metadata,
                **({"limits": limits} if limits else {}),
                **({"ordered": pairs} if pairs else {}),
            }
            return fn

        return decorator

    def lookup(self, name: str) -> F:
        """The entry, or :class:`UnknownNameError` listing the valid names."""
        return lookup(self, self.kind, name)

    def meta(self, name: str) -> Mapping[str, Any]:
        """The metadata ``name`` was registered with."""
        self.lookup(name)
        return self._meta.get(name, {})

    def options(self, name: str) -> dict[str, Any]:
        """The options of ``name`` and their defaults (:data:`REQUIRED` when none).

        An entry that takes ``**kwargs`` accepts any option: its options are
        the named ones, and :meth:`accepts_any` says so.
        """
        out = {}
        for key, p in inspect.signature(self.lookup(name)).parameters.items():
            if key in self.reserved or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            out[key] = REQUIRED if p.default is inspect.Parameter.empty else p.default
        return out

    def annotations(self, name: str) -> dict[str, str]:
        """Each option's annotation as written (``"int"``, ``"float | None"``)."""
        out = {}
        for key, p in inspect.signature(self.lookup(name)).parameters.items():
            if key in self.options(name):
                ann = p.annotation
                out[key] = (
                    "" if ann is inspect.Parameter.empty else str(getattr(ann, "__name__", ann))
                )
        return out

    def accepts_any(self, name: str) -> bool:
        """Whether ``name`` takes ``**kwargs`` (any option)."""
        params = inspect.signature(self.lookup(name)).parameters.values()
        return any(p.kind is p.VAR_KEYWORD for p in params)


def lookup(registry: Mapping[str, F], kind: str, name: str) -> F:
    """Return ``registry[name]`` or raise an error that lists the valid names."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = sorted(registry)
        raise UnknownNameError(
            f"unknown {kind} '{name}'{suggest(str(name), valid)}; valid: {', '.join(valid)}"
        ) from None


def _interval(text: str) -> tuple[float, float, bool, bool]:
    """``"[0, 1)"`` -> ``(0.0, 1.0, True, False)``: bounds and whether each is included."""
    text = text.strip()
    if len(text) < 5 or text[0] not in "[(" or text[-1] not in "])" or "," not in text:
        raise ValueError(f"not an interval like '[0, 1)': {text!r}")
    low, high = (float(part) for part in text[1:-1].split(","))
    return low, high, text[0] == "[", text[-1] == "]"


def check_value(value: object, annotation: str, limit: object = None) -> str | None:
    """What is wrong with an option's ``value`` (None: nothing), from its annotation and limit.

    ``annotation`` is the option's annotation as written (``"int"``, ``"float | None"``,
    ``"tuple[float, ...]"``; others are not checked); ``limit`` an interval
    (``"(0, inf)"``, ``"[1, inf)"``) or a tuple of the allowed values.

    Example:
        >>> check_value("4.5", "int")
        "expected an integer, got '4.5' (text: YAML reads 4.5 as a string; write 4.5 unquoted)"
        >>> check_value(0.0, "float", "(0, inf)"), check_value("exp", "str", ("exp", "uniform"))
        ('expected a value in (0, inf), got 0.0', None)
        >>> check_value(None, "int | None", "[1, inf)") is None
        True
    """
    from trainables.errors import shown

    kinds = [k.strip() for k in annotation.split("|")]
    if value is None:
        return None if "None" in kinds else f"expected {_expected(kinds)}, got None"
    checks = [_TYPES.get(k) for k in kinds if k != "None"]
    if checks and None not in checks and not any(ok(value) for ok in checks):
        return f"expected {_expected(kinds)}, got {shown(value)}"
    if isinstance(limit, tuple | list):
        if value not in limit:
            return f"expected one of {', '.join(map(str, limit))}, got {shown(value)}"
    elif isinstance(limit, str) and isinstance(value, int | float):
        low, high, with_low, with_high = _interval(limit)
        inside = (value >= low if with_low else value > low) and (
            value <= high if with_high else value < high
        )
        if not inside:
            return f"expected a value in {limit}, got {value!r}"
    return None


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


#: The annotations :func:`check_value` checks (others, e.g. a Mapping, are taken as they are).
_TYPES: dict[str, Callable[[Any], bool]] = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),  # options are not coerced
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "tuple[float, ...]": lambda v: isinstance(v, list | tuple) and all(map(_is_number, v)),
}


def _expected(kinds: list[str]) -> str:
    words = {
        "int": "an integer",
        "float": "a number",
        "bool": "true or false",
        "str": "a string",
        "tuple[float, ...]": "a list of numbers",
    }
    named = [words.get(k, k) for k in kinds if k != "None"]
    return " or ".join(named) + (" or null" if "None" in kinds else "")
