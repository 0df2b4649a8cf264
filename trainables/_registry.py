"""Registries: plain ``dict[str, callable]`` filled by ``register_*`` decorators.

Every extension point of a trial (data sources, augmentation ops, masking
strategies, loss terms, probes, encoder presets) is one such dict. This module
holds the two pieces they share: the decorator factory and the lookup whose
error lists the valid names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TypeVar

from trainables.errors import SSLSearchError

__all__ = ["UnknownNameError", "lookup", "make_register", "suggest"]

F = TypeVar("F", bound=Callable)


class UnknownNameError(SSLSearchError, KeyError):
    """A name that is not in a registry; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def suggest(name: str, valid: list[str] | tuple[str, ...]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest valid name, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def make_register(registry: dict[str, F], kind: str) -> Callable[[str], Callable[[F], F]]:
    """Build the ``register_<kind>(name)`` decorator of one registry.

    Example:
        >>> PROBES: dict = {}
        >>> register_probe = make_register(PROBES, "probe")
        >>> @register_probe("zero")
        ... def zero(*args):
        ...     return {}
        >>> sorted(PROBES)
        ['zero']
    """

    def register(name: str) -> Callable[[F], F]:
        def decorator(fn: F) -> F:
            if name in registry:
                raise ValueError(f"{kind} '{name}' is already registered")
            registry[name] = fn
            return fn

        return decorator

    register.__name__ = f"register_{kind}"
    return register


def lookup(registry: dict[str, F], kind: str, name: str) -> F:
    """Return ``registry[name]`` or raise an error that lists the valid names."""
    try:
        return registry[name]
    except KeyError:
        valid = sorted(registry)
        raise UnknownNameError(
            f"unknown {kind} '{name}'{suggest(name, valid)}; valid: {', '.join(valid)}"
        ) from None
