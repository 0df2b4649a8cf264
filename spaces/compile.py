"""Compile a :class:`~spaces.schema.SearchSpec` to an Optuna define-by-run function.

``define_by_run(spec)(trial)`` samples every parameter on an
``optuna.Trial`` (or ``optuna.trial.FixedTrial``) and returns the nested trial
config: the spec's fixed settings, overlaid with the sampled values (``/``
in a name nests), and ``train/epochs`` from the budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import optuna

from spaces.schema import (
    CategoricalParam,
    FixedParam,
    FloatParam,
    IntParam,
    Param,
    SearchSpec,
)

__all__ = ["define_by_run", "nest", "representative_configs", "suggest"]


def suggest(trial: optuna.trial.BaseTrial, param: Param) -> Any:
    """Sample one parameter on ``trial``."""
    if isinstance(param, FloatParam):
        return trial.suggest_float(
            param.name, param.low, param.high, log=param.log, step=param.step
        )
    if isinstance(param, IntParam):
        return trial.suggest_int(param.name, param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, CategoricalParam):
        return trial.suggest_categorical(param.name, list(param.choices))
    if isinstance(param, FixedParam):
        return param.value
    raise TypeError(f"unknown parameter type {type(param).__name__}")


def nest(flat: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Overlay ``{"a/b": v}`` onto a deep copy of ``base`` as ``{"a": {"b": v}}``.

    Example:
        >>> nest({"mask/ratio": 0.5}, {"mask": {"strategy": "random"}})
        {'mask': {'strategy': 'random', 'ratio': 0.5}}
    """
    out = _plain_copy(base or {})
    for name, value in flat.items():
        keys = name.split("/")
        node = out
        for key in keys[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[keys[-1]] = value
    return out


def _plain_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain_copy(v) for k, v in value.items()}
    return copy.deepcopy(value)


def trial_config(spec: SearchSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The nested config of a trial whose parameters took ``values``."""
    config = nest(values, spec.base)
    config.setdefault("train", {})["epochs"] = spec.budget.epochs
    return config


def define_by_run(spec: SearchSpec) -> Callable[[optuna.trial.BaseTrial], dict[str, Any]]:
    """The define-by-run function of ``spec``: ``trial -> nested trial config``.

    Fixed parameters are not sampled; they are recorded as the trial's user
    attributes (``fixed/<name>``) so that the study says what each trial ran.

    Example:
        >>> from spaces.schema import parse_spec
        >>> spec = parse_spec(
        ...     {"params": {"mask/ratio": {"type": "float", "low": 0.1, "high": 0.9}}},
        ...     source="inline",
        ... )
        >>> fn = define_by_run(spec)
        >>> fn(optuna.trial.FixedTrial({"mask/ratio": 0.4}))["mask"]
        {'ratio': 0.4}
    """

    def sample(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        values = {}
        for param in spec.params:
            values[param.name] = suggest(trial, param)
            if isinstance(param, FixedParam):
                trial.set_user_attr(f"fixed/{param.name}", param.value)
        return trial_config(spec, values)

    return sample


def representative_configs(spec: SearchSpec) -> Iterator[dict[str, Any]]:
    """Configs with every parameter at its low end, then at its high end (for validation)."""
    for end in (0, -1):
        values = {}
        for p in spec.params:
            if isinstance(p, FixedParam):
                values[p.name] = p.value
            elif isinstance(p, CategoricalParam):
                values[p.name] = p.choices[end]
            else:
                values[p.name] = p.low if end == 0 else p.high
        yield trial_config(spec, values)
    # Every categorical choice at least once, the others at their low end.
    for p in spec.params:
        if isinstance(p, CategoricalParam):
            for choice in p.choices[1:-1]:
                values = {
                    q.name: (
                        choice
                        if q is p
                        else q.value
                        if isinstance(q, FixedParam)
                        else q.choices[0]
                        if isinstance(q, CategoricalParam)
                        else q.low
                    )
                    for q in spec.params
                }
                yield trial_config(spec, values)
