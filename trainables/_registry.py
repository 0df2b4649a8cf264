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
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from trainables.errors import SSLSearchError

__all__ = ["REQUIRED", "Registry", "UnknownNameError", "lookup", "suggest"]

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

    def register(self, name: str, **metadata: Any) -> Callable[[F], F]:
        """Decorator: register the function under ``name`` with ``metadata``."""

        def decorator(fn: F) -> F:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is already registered")
            self[name] = fn
            self._meta[name] = dict(metadata)
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
