"""Compile a :class:`~spaces.model.SearchSpec` to an Optuna define-by-run function.

``define_by_run(spec)(trial)`` samples every parameter on an
``optuna.Trial`` (or ``optuna.trial.FixedTrial``) and returns the nested trial
config: the spec's fixed settings, overlaid with the sampled values (``/``
in a name nests), and ``train/epochs`` from the budget.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from spaces.model import SearchSpec
from trainables.config import TrainConfig

if TYPE_CHECKING:
    import optuna

#: ``fixed/<name>``: the user attribute that records a fixed parameter on each trial.
FIXED_ATTR_PREFIX = "fixed/"
#: The user attribute with the ``train.seed`` a trial ran with, where it is not
#: the one its parameters give (a configuration sampled again: ``budget.repeated_config``).
SEED_ATTR = "seed"

__all__ = [
    "FIXED_ATTR_PREFIX",
    "SEED_ATTR",
    "config_seed",
    "define_by_run",
    "get_path",
    "grid_search_space",
    "grid_size",
    "nest",
    "own_config",
    "ran_config",
    "representative_configs",
    "set_path",
    "trial_config",
]


def nest(flat: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Overlay ``{"a/b": v}`` onto a deep copy of ``base`` as ``{"a": {"b": v}}``.

    Example:
        >>> nest({"mask/ratio": 0.5}, {"mask": {"strategy": "random"}})
        {'mask': {'strategy': 'random', 'ratio': 0.5}}
    """
    out = _plain_copy(base or {})
    for name, value in flat.items():
        set_path(out, name, value)
    return out


def set_path(config: dict[str, Any], name: str, value: Any) -> None:
    """Set ``config["a"]["b"] = value`` for ``name`` ``a/b``, making the parents it lacks."""
    *parents, leaf = name.split("/")
    node = config
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[leaf] = value


def get_path(config: Mapping[str, Any], name: str) -> Any:
    """``config["a"]["b"]`` for ``name`` ``a/b``; None where the path does not exist.

    Example:
        >>> get_path({"mask": {"ratio": 0.5}}, "mask/ratio"), get_path({}, "mask/ratio")
        (0.5, None)
    """
    node: Any = config
    for key in name.split("/"):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


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
        >>> import optuna
        >>> from spaces import parse_spec
        >>> spec = parse_spec(
        ...     {"params": {"mask/ratio": {"type": "float", "low": 0.1, "high": 0.9}}},
        ...     source="inline",
        ... )
        >>> fn = define_by_run(spec)
        >>> fn(optuna.trial.FixedTrial({"mask/ratio": 0.4}))["mask"]
        {'ratio': 0.4}
    """

    def sample(trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for param in spec.params:
            if not param.active(values):
                continue  # a conditional parameter whose condition does not hold
            values[param.name] = param.suggest(trial)
            if not param.sampled:
                trial.set_user_attr(f"{FIXED_ATTR_PREFIX}{param.name}", values[param.name])
        repeats = _grid_repeats(spec)
        if repeats > 1:
            repeat = trial.suggest_categorical("repeat", list(range(repeats)))
            values["train/seed"] = config_seed(spec.base) + repeat
        return trial_config(spec, values)

    return sample


def _grid_repeats(spec: SearchSpec) -> int:
    """How many seeds the grid sampler runs each point with (1: not a grid)."""
    if spec.study.sampler.name != "grid":
        return 1
    return int(spec.study.sampler.options.get("repeats", 1))


def own_config(spec: SearchSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration's nested config on its own ``train.seed``: ``params``
    through :func:`define_by_run`, the grid's ``repeat`` (a seed index) at 0.

    Example:
        >>> from spaces import parse_spec
        >>> spec = parse_spec(
        ...     {"study": {"sampler": {"name": "grid", "seed": 0, "repeats": 2}},
        ...      "params": {"mask/ratio": {"type": "grid", "values": [0.5]}}, "train": {"seed": 3}},
        ...     source="inline",
        ... )
        >>> own_config(spec, {"mask/ratio": 0.5, "repeat": 1})["train"]["seed"]
        3
    """
    import optuna

    params = dict(params)
    if _grid_repeats(spec) > 1:
        params["repeat"] = 0
    return define_by_run(spec)(optuna.trial.FixedTrial(params))


def config_seed(config: Mapping[str, Any]) -> int:
    """A nested trial config's ``train.seed`` (the built-in trial's default where unset).

    Example:
        >>> config_seed({"train": {"seed": 3}}), config_seed({"data": {}})
        (3, 0)
    """
    return int((config.get("train") or {}).get("seed", TrainConfig.seed))


def ran_config(spec: SearchSpec, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The nested config a search trial ran: its parameters through
    :func:`define_by_run`, the fixed values it recorded (``fixed/<name>``: a
    resume may have changed them since) and the ``train.seed`` it ran with when
    that was another (:data:`SEED_ATTR`, a configuration sampled again).

    Example:
        >>> import optuna
        >>> from optuna.distributions import FloatDistribution
        >>> from spaces import parse_spec
        >>> spec = parse_spec(
        ...     {"params": {"mask/ratio": {"type": "float", "low": 0.1, "high": 0.9}}},
        ...     source="inline",
        ... )
        >>> again = optuna.trial.create_trial(
        ...     value=0.5, params={"mask/ratio": 0.4},
        ...     distributions={"mask/ratio": FloatDistribution(0.1, 0.9)},
        ...     user_attrs={SEED_ATTR: 1},
        ... )
        >>> ran_config(spec, again)["train"]["seed"]
        1
    """
    import optuna

    config = define_by_run(spec)(optuna.trial.FixedTrial(dict(trial.params)))
    for key, value in trial.user_attrs.items():
        if key.startswith(FIXED_ATTR_PREFIX):
            set_path(config, key.removeprefix(FIXED_ATTR_PREFIX), value)
    if SEED_ATTR in trial.user_attrs:
        config.setdefault("train", {})["seed"] = int(trial.user_attrs[SEED_ATTR])
    return config


def grid_search_space(spec: SearchSpec) -> dict[str, list[Any]]:
    """The ``grid`` sampler's axes: grid values, categorical choices, and ``repeat``."""
    space: dict[str, list[Any]] = {}
    for p in spec.params:
        axis = p.grid_axis()
        if axis is not None:
            space[p.name] = axis
    repeats = spec.study.sampler.options.get("repeats", 1)
    if spec.study.sampler.name == "grid" and isinstance(repeats, int) and 1 < repeats <= 1000:
        space["repeat"] = list(range(repeats))  # (other values are refused by the checks)
    return space


def grid_size(spec: SearchSpec) -> int:
    """How many trials a full pass over the grid takes (values x repeats)."""
    return math.prod(len(v) for v in grid_search_space(spec).values())


def representative_configs(spec: SearchSpec) -> Iterator[dict[str, Any]]:
    """Configs that visit every parameter's ends and every choice (for validation):
    each choice (and each value of a short int range) with the others at their low
    ends, and again at their high ends.

    Each config respects the conditions: a parameter is set only where they hold.
    """
    plans: list[dict[str, int]] = [{"end": 0}, {"end": -1}]
    for p in spec.params:
        if p.sampled and (not p.is_range or len(p.ends()) > 2):  # every value, both ways
            plans += [{"end": e, p.name: i} for i in range(len(p.ends())) for e in (0, -1)]
    for plan in plans:
        values: dict[str, Any] = {}
        for p in spec.params:
            if p.active(values):
                values[p.name] = p.ends()[plan.get(p.name, plan["end"])]
        yield trial_config(spec, values)
