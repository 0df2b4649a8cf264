"""The built-in trainable's dataset, decoded once in the driver before any trial.

``run``, ``resume`` and ``confirm`` decode it before Ray starts, so that a bad
path, an image folder without class folders or a file that does not decode is
refused before anything runs; ``spaces check`` does the same for a space that
gives its data source options (:func:`needs_decoding`), so that it refuses what
``run`` would. Importing this module imports neither torch nor Ray; decoding imports
torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spaces import SearchSpec, SpecError
from spaces.checks import add_trial_problems
from spaces.compile import representative_configs
from spaces.errors import Problems

__all__ = [
    "absolute_data_path",
    "absolute_path_sets",
    "builtin_dataset",
    "check_data",
    "needs_decoding",
]


def builtin_dataset(spec: SearchSpec) -> tuple[Any, Any]:
    """A first trial's config and its decoded dataset (a bad path fails here, early).

    The first of the configs ``spaces check`` validates (every parameter at its
    low end): the fixed settings alone are no trial when a parameter overrides them.
    Each of those configs on this data is then checked against it
    (:func:`trainables.validate.dataset_problems`: classes, k, image geometry).

    Raises:
        SpecError: the data cannot be read, located at the space's data key.
    """
    from trainables.config import ConfigError
    from trainables.data import load_dataset
    from trainables.validate import dataset_problems, parse_trial_config

    problems = Problems(spec.source, spec.lines)
    try:
        base = parse_trial_config(next(representative_configs(spec)))
        dataset = load_dataset(base.data)
    except ConfigError as err:
        problems.add_key(err.path, err.message)
        raise SpecError(problems.items) from None
    seen: set = set()
    for config in representative_configs(spec):  # what only the decoded data shows
        cfg = parse_trial_config(config)
        if cfg.data == base.data:
            add_trial_problems(spec, problems, dataset_problems(cfg, dataset), seen)
    if problems.items:
        raise SpecError(problems.items)
    return base, dataset


def needs_decoding(spec: SearchSpec) -> bool:
    """Whether ``spaces check`` must decode the space's data to refuse what ``run``
    would: when the space gives its source options (a path, a count ...). The
    registry's limits check each option alone; the rules between them, and what is
    wrong inside a file, only the source itself finds.

    Example:
        >>> from spaces import load_spec
        >>> needs_decoding(load_spec("spaces/default.yaml"))  # digits, no options
        False
        >>> needs_decoding(load_spec("spaces/augmentation_strength.yaml"))  # shapes, a count
        True
    """
    return bool(next(representative_configs(spec)).get("data", {}).get("options"))


def check_data(spec: SearchSpec) -> None:
    """Decode the space's data as ``run`` would, where :func:`needs_decoding`.

    Raises:
        SpecError: as :func:`builtin_dataset`.
    """
    if needs_decoding(spec):
        builtin_dataset(spec)


def absolute_data_path(spec: SearchSpec) -> SearchSpec:
    """The spec with a relative ``data.options.path`` made absolute (a relative path is
    taken from the directory ``run`` is started in), so that the run's ``spec.yaml``
    finds the data from any directory: ``resume`` and ``confirm`` from elsewhere.

    Example:
        >>> from spaces import parse_spec
        >>> spec = parse_spec({"data": {"name": "npz", "options": {"path": "d.npz"}}},
        ...                   source="s.yaml", builtin_trainable=False)
        >>> Path(absolute_data_path(spec).base["data"]["options"]["path"]).is_absolute()
        True
    """
    base = _with_absolute(spec.base, _PATH)
    return spec if base is spec.base else dataclasses.replace(spec, base=base)


def absolute_path_sets(sets: Mapping[str, Any]) -> dict[str, Any]:
    """``--set`` overrides with a relative ``data.options.path`` made absolute, as
    :func:`absolute_data_path` does for a run's spec (``confirm`` keeps its overrides
    in its plan, which a later session reads from wherever it is started).

    Example:
        >>> Path(absolute_path_sets({"data.options.path": "d.npz"})["data.options.path"]).name
        'd.npz'
        >>> absolute_path_sets({"data.options": {"path": "/d.npz"}, "data.name": "npz"})
        {'data.options': {'path': '/d.npz'}, 'data.name': 'npz'}
    """
    out = dict(sets)
    for key, value in sets.items():  # data.options.path, data.options={path: ...}, data={...}
        parts = tuple(key.split("."))
        if parts == _PATH[: len(parts)]:
            out[key] = _with_absolute(value, _PATH[len(parts) :])
    return out


#: where a data source's path is, in a spec's fixed settings
_PATH = ("data", "options", "path")


def _with_absolute(value: Any, rest: tuple[str, ...]) -> Any:
    """``value`` with the relative path at ``rest`` (keys below it) made absolute;
    ``value`` itself when there is none."""
    if not rest:
        relative = isinstance(value, str) and not Path(value).expanduser().is_absolute()
        return str(Path(value).expanduser().resolve()) if relative else value
    if not isinstance(value, Mapping) or rest[0] not in value:
        return value
    inner = _with_absolute(value[rest[0]], rest[1:])
    return value if inner is value[rest[0]] else {**value, rest[0]: inner}
