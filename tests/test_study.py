"""Optuna samplers and pruners by name: each default stated once, in the registry."""

from __future__ import annotations

import optuna
import pytest
import yaml

from spaces import define_by_run, parse_spec
from spaces.compile import grid_search_space
from spaces.study import PRUNERS, SAMPLERS, build_pruner, build_sampler, resolved_options


def spec_of(data, **kw):
    return parse_spec(data, source="inline", **{"builtin_trainable": False, **kw})


PARAMS = {"params": {"x/y": {"type": "float", "low": 0.0, "high": 1.0}}}


def _draws(spec, n=12):
    sampler = build_sampler(spec.study.sampler.name, spec.study.sampler.options)
    pruner = build_pruner(spec.study.pruner.name, spec.study.pruner.options)
    study = optuna.create_study(sampler=sampler, pruner=pruner, direction="maximize")
    fn = define_by_run(spec)
    out = []
    for _ in range(n):
        trial = study.ask()
        value = fn(trial)["x"]["y"]
        pruned = []
        for step in range(1, 8):  # a curve per trial: the pruner's decisions count too
            trial.report(value * step, step)
            pruned.append(trial.should_prune())
        study.tell(trial, value)
        out.append((value, tuple(pruned)))
    return out


@pytest.mark.parametrize(
    "named",
    [
        {"sampler": "tpe", "pruner": "median"},
        {"sampler": {"name": "tpe"}, "pruner": {"name": "median"}},
    ],
)
def test_naming_the_default_sampler_and_pruner_gives_the_same_study(named):
    left_out = spec_of(PARAMS)
    named_spec = spec_of({**PARAMS, "study": named})
    assert named_spec.study.sampler == left_out.study.sampler
    assert named_spec.study.pruner == left_out.study.pruner
    # the same options also mean the same draws and the same pruning decisions
    assert _draws(named_spec) == _draws(left_out)


def test_the_resolved_spec_writes_every_option_out():
    spec = spec_of({**PARAMS, "study": {"sampler": {"name": "random", "seed": 3}}})
    written = yaml.safe_load(yaml.safe_dump(spec.to_dict()))["study"]
    assert written["sampler"] == {"name": "random", "seed": 3}
    assert written["pruner"] == {
        "name": "median",
        "n_startup_trials": 5,
        "n_warmup_steps": 5,
        "interval_steps": 1,
        "n_min_trials": 1,
    }
    assert spec_of({**PARAMS, "study": written}).study == spec.study  # parses back the same


@pytest.mark.parametrize("name", sorted(PRUNERS))
def test_resolved_options_are_the_registered_defaults(name):
    options = resolved_options("pruner", name)
    assert options == {k: v for k, v in PRUNERS.options(name).items() if v != "<required>"}
    assert resolved_options("pruner", name, {"zzz": 1})["zzz"] == 1  # given options are kept


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_builds_and_samples(name):
    params = {
        "mask/ratio": {"type": "grid" if name == "grid" else "float", "low": 0.1, "high": 0.9}
    }
    if name == "grid":
        params = {"mask/ratio": {"type": "grid", "values": [0.25, 0.75]}}
    spec = spec_of(
        {"study": {"sampler": {"name": name, "seed": 1}}, "params": params}, builtin_trainable=True
    )
    sampler = build_sampler(name, spec.study.sampler.options, search_space=grid_search_space(spec))
    study = optuna.create_study(sampler=sampler)
    fn = define_by_run(spec)
    for i in range(4):
        trial = study.ask()
        assert 0.1 <= fn(trial)["mask"]["ratio"] <= 0.9
        study.tell(trial, float(i))
