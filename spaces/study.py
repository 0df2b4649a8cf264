"""Optuna samplers and pruners by name: the registries a space's ``study`` section names.

Each entry maps the options written in the spec to an Optuna object. Options
are passed explicitly (Optuna's defaults change between releases: a spec
pins e.g. TPE's ``multivariate`` and ``constant_liar``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optuna

from trainables._registry import lookup, make_register

__all__ = [
    "PRUNERS",
    "SAMPLERS",
    "build_pruner",
    "build_sampler",
    "register_pruner",
    "register_sampler",
]

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {}
register_sampler = make_register(SAMPLERS, "sampler")
PRUNERS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {}
register_pruner = make_register(PRUNERS, "pruner")


@register_sampler("tpe")
def _tpe(
    *,
    seed: int | None = None,
    multivariate: bool = True,
    constant_liar: bool = True,
    n_startup_trials: int = 10,
    group: bool = False,
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=multivariate,
        constant_liar=constant_liar,
        n_startup_trials=n_startup_trials,
        group=group,
    )


@register_sampler("random")
def _random(*, seed: int | None = None) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@register_pruner("median")
def _median(
    *,
    n_startup_trials: int = 5,
    n_warmup_steps: int = 0,
    interval_steps: int = 1,
    n_min_trials: int = 1,
) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=n_startup_trials,
        n_warmup_steps=n_warmup_steps,
        interval_steps=interval_steps,
        n_min_trials=n_min_trials,
    )


@register_pruner("none")
def _none() -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


def _build(registry: dict, kind: str, name: str, options: Mapping[str, Any]) -> Any:
    factory = lookup(registry, kind, name)
    try:
        return factory(**dict(options))
    except TypeError as err:
        raise ValueError(
            f"{kind} '{name}': " + str(err).replace(f"{factory.__name__}() ", "")
        ) from None


def build_sampler(name: str, options: Mapping[str, Any]) -> optuna.samplers.BaseSampler:
    """``build_sampler("tpe", {"seed": 0})`` -> a seeded ``TPESampler``."""
    return _build(SAMPLERS, "sampler", name, options)


def build_pruner(name: str, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """``build_pruner("median", {"n_warmup_steps": 5})`` -> a ``MedianPruner``."""
    return _build(PRUNERS, "pruner", name, options)
