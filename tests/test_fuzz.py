"""Random mutations of every shipped space: a located error, or ok and then a run that starts.

Each mutation deletes a key, changes a value's type, swaps two values or pushes a
number out of range, anywhere in the file. ``spaces check`` (``parse_spec``) must
either refuse it with located problems or accept it; never raise anything else; and
what it accepts must pass what ``run`` does before its first trial (the base trial
config against the live registries, the dataset decoded, every representative
config). Seeded: the same mutations every run.
"""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from search.dataset import builtin_dataset
from spaces import SpecError, parse_spec, shipped_spaces
from spaces.compile import representative_configs
from spaces.load import load_file
from trainables.validate import parse_trial_config

ODD_VALUES = [None, "text", "1e-4", 1.5, -3, 0, True, [], {}, [1, "a"], 10**30, float("nan")]
MUTATIONS_PER_SPACE = 60


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.append((*prefix, i))
            out += _paths(value, (*prefix, i))
    return out


def _parent(data: Any, path: tuple) -> Any:
    for key in path[:-1]:
        data = data[key]
    return data


def _mutate(data: dict, rng: random.Random) -> tuple[dict, str]:
    data = copy.deepcopy(data)
    paths = _paths(data)
    path = rng.choice(paths)
    parent, key = _parent(data, path), path[-1]
    kind = rng.choice(["delete", "type", "swap", "range"])
    if kind == "delete":
        del parent[key]
    elif kind == "type":
        parent[key] = rng.choice(ODD_VALUES)
    elif kind == "swap":
        other = rng.choice(paths)
        try:
            other_parent = _parent(data, other)
            parent[key], other_parent[other[-1]] = other_parent[other[-1]], parent[key]
        except (KeyError, IndexError, TypeError):  # the other path ran through this one
            parent[key] = rng.choice(ODD_VALUES)
    else:
        value = parent[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            parent[key] = rng.choice([-value - 1, value * 1000 + 1, 0, -1e-9])
        else:
            parent[key] = rng.choice([-1, 0, 1e9])
    return data, f"{kind} {'/'.join(map(str, path))}"


@pytest.mark.parametrize("name", sorted(shipped_spaces()))
def test_mutated_spaces_are_refused_with_a_location_or_run(name):
    path = shipped_spaces()[name]
    data, lines = load_file(path, str(path))
    rng = random.Random(name)
    datasets: dict[str, Any] = {}
    for _ in range(MUTATIONS_PER_SPACE):
        mutated, what = _mutate(data, rng)
        try:
            spec = parse_spec(mutated, source=str(path), lines=lines)
        except SpecError as err:
            assert err.lines() and all(line.strip() for line in err.lines()), what
            continue
        # accepted: what run checks before its first trial must accept it too
        try:
            base, _ = _cached_dataset(spec, datasets)
            for config in representative_configs(spec):
                parse_trial_config(config)
        except SpecError as err:
            pytest.fail(f"{name}: {what}: check said ok, run refuses: {err}")
        assert base is not None


def _cached_dataset(spec, datasets: dict[str, Any]) -> tuple[Any, Any]:
    key = repr(spec.base.get("data"))
    if key not in datasets:
        datasets[key] = builtin_dataset(spec)
    return datasets[key]
