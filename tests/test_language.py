"""The space language beyond plain distributions: conditions, grids, samplers, include."""

from __future__ import annotations

import textwrap

import optuna
import pytest

from spaces import SpecError, define_by_run, load_spec, parse_spec
from spaces.compile import grid_search_space, grid_size
from spaces.study import SAMPLERS, build_sampler


def spec_of(data, **kw):
    return parse_spec(data, source="inline", **kw)


CONDITIONAL = {
    "params": {
        "mask/strategy": {"type": "categorical", "choices": ["random", "block", "colour_noise"]},
        "mask/block/aspect": {
            "type": "float",
            "low": 0.3,
            "high": 1.0,
            "when": {"mask/strategy": "block"},
        },
        "mask/colour_noise/colour": {
            "type": "categorical",
            "choices": ["red", "blue"],
            "when": {"mask/strategy": ["colour_noise"]},
        },
        "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
    }
}


def test_conditional_parameters_exist_only_when_their_condition_holds():
    fn = define_by_run(spec_of(CONDITIONAL))
    cfg = fn(
        optuna.trial.FixedTrial(
            {"mask/strategy": "block", "mask/block/aspect": 0.5, "mask/ratio": 0.4}
        )
    )
    assert cfg["mask"] == {"strategy": "block", "block": {"aspect": 0.5}, "ratio": 0.4}
    cfg = fn(optuna.trial.FixedTrial({"mask/strategy": "random", "mask/ratio": 0.4}))
    assert cfg["mask"] == {"strategy": "random", "ratio": 0.4}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        fn(trial)
        strategy = trial.params["mask/strategy"]
        seen.add(strategy)
        assert ("mask/block/aspect" in trial.params) == (strategy == "block")
        assert ("mask/colour_noise/colour" in trial.params) == (strategy == "colour_noise")
        study.tell(trial, 0.0)
    assert seen == {"random", "block", "colour_noise"}


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ({"mask/strategi": "block"}, "condition on 'mask/strategi', which is not a parameter"),
        ({"mask/ratio": 0.5}, "condition on 'mask/ratio', declared after this one"),
        ({"mask/strategy": "checkerboard"}, "'checkerboard' is not a value of 'mask/strategy'"),
    ],
)
def test_bad_conditions_are_located(when, fragment):
    data = {
        "params": {
            "mask/strategy": {"type": "categorical", "choices": ["random", "block"]},
            "mask/block/aspect": {"type": "float", "low": 0.3, "high": 1.0, "when": when},
            "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
        }
    }
    with pytest.raises(SpecError) as info:
        spec_of(data)
    (line,) = info.value.lines()
    assert f"params/mask/block/aspect/when/{next(iter(when))}: {fragment}" in line


def grid_spec(**budget):
    return {
        "study": {"sampler": {"name": "grid", "seed": 0, "repeats": 3}, "pruner": "none"},
        "budget": budget,
        "params": {
            "mask/ratio": {"type": "grid", "values": [round(0.1 * i, 1) for i in range(1, 10)]}
        },
    }


def test_grid_with_repeats_runs_every_point_with_each_seed():
    spec = spec_of(grid_spec(epochs=1))
    assert grid_size(spec) == 27 and spec.budget.trials == 27
    assert grid_search_space(spec)["repeat"] == [0, 1, 2]
    study = optuna.create_study(
        sampler=build_sampler(
            "grid", spec.study.sampler.options, search_space=grid_search_space(spec)
        )
    )
    fn = define_by_run(spec)
    seen = []
    for _ in range(27):
        trial = study.ask()
        cfg = fn(trial)
        seen.append((cfg["mask"]["ratio"], cfg["train"]["seed"]))
        study.tell(trial, 0.0)
    assert sorted(seen) == sorted((round(0.1 * i, 1), s) for i in range(1, 10) for s in range(3))


def test_grid_trials_must_match_the_grid():
    with pytest.raises(SpecError) as info:
        spec_of(grid_spec(trials=30))
    assert (
        "budget/trials: the grid has 27 points (values x repeats); trials must be at most 27"
        in str(info.value)
    )
    assert spec_of(grid_spec(trials=4)).budget.trials == 4  # part of the grid
    bad = grid_spec()
    bad["params"]["optim/lr"] = {"type": "float", "low": 1e-4, "high": 1e-2}
    with pytest.raises(SpecError, match="params/optim/lr: the grid sampler needs listed values"):
        spec_of(bad)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_builds_and_samples(name):
    params = {
        "mask/ratio": {"type": "grid" if name == "grid" else "float", "low": 0.1, "high": 0.9}
    }
    if name == "grid":
        params = {"mask/ratio": {"type": "grid", "values": [0.25, 0.75]}}
    spec = spec_of({"study": {"sampler": {"name": name, "seed": 1}}, "params": params})
    sampler = build_sampler(name, spec.study.sampler.options, search_space=grid_search_space(spec))
    study = optuna.create_study(sampler=sampler)
    fn = define_by_run(spec)
    for i in range(4):
        trial = study.ask()
        assert 0.1 <= fn(trial)["mask"]["ratio"] <= 0.9
        study.tell(trial, float(i))


def test_multi_objective_needs_a_capable_sampler():
    objectives = [
        {"metric": "knn_top1", "direction": "maximize"},
        {"metric": "trial_time_s", "direction": "minimize"},
    ]
    ok = spec_of(
        {
            "study": {
                "objective": objectives,
                "sampler": {"name": "nsga2", "seed": 0},
                "pruner": "none",
            }
        }
    )
    assert [o.metric for o in ok.study.objectives] == ["knn_top1", "trial_time_s"]
    with pytest.raises(SpecError) as info:
        spec_of({"study": {"objective": objectives, "sampler": {"name": "cmaes"}}})
    assert "study/sampler: 'cmaes' handles one objective" in str(info.value)


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_include_merges_a_base_and_locates_errors_in_either_file(tmp_path):
    write(
        tmp_path / "base.yaml",
        """
        description: base
        budget: {trials: 5, epochs: 3}
        params:
          mask/ratio: {type: float, low: 0.1, high: 0.9}
          optim/lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        """,
    )
    child = write(
        tmp_path / "child.yaml",
        """
        include: base.yaml
        budget: {trials: 2}
        params:
          mask/ratio: {type: fixed, value: 0.75}
          optim/lr: null
        """,
    )
    spec = load_spec(child)
    assert spec.budget.trials == 2 and spec.budget.epochs == 3
    assert [p.name for p in spec.params] == ["mask/ratio"]
    assert spec.description == "base"
    write(
        tmp_path / "base.yaml",
        """
        budget: {trials: 5, epochs: 3}
        params:
          mask/ratio: {type: float, low: 0.9, high: 0.1}
        """,
    )
    write(child, "include: base.yaml\nbudget: {trials: 0}\n")
    with pytest.raises(SpecError) as info:
        load_spec(child)
    assert info.value.lines() == [
        f"{tmp_path / 'base.yaml'}:3 params/mask/ratio: low (0.9) > high (0.1)",
        f"{child}:2 budget/trials: expected an integer >= 1, got 0",
    ] or sorted(info.value.lines()) == sorted(
        [
            f"{tmp_path / 'base.yaml'}:3 params/mask/ratio: low (0.9) > high (0.1)",
            f"{child}:2 budget/trials: expected an integer >= 1, got 0",
        ]
    )


def test_include_cycles_and_missing_bases_are_errors(tmp_path):
    a = write(tmp_path / "a.yaml", "include: b.yaml\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(SpecError, match="includes itself"):
        load_spec(a)
    c = write(tmp_path / "c.yaml", "include: nope.yaml\n")
    with pytest.raises(SpecError, match=r"c.yaml:1 include: no such file"):
        load_spec(c)


def test_duplicate_keys_are_refused(tmp_path):
    path = write(
        tmp_path / "d.yaml",
        """
        params:
          mask/ratio: {type: float, low: 0.1, high: 0.9}
          mask/ratio: {type: float, low: 0.2, high: 0.9}
        """,
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.lines() == [f"{path}:3 params/mask/ratio: duplicate key"]


def test_an_edit_that_changes_a_distribution_is_listed_and_fixed_values_are_allowed():
    from spaces.diff import incompatibilities

    base = {
        "params": {
            "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
            "optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        }
    }
    old = spec_of(base)
    same = spec_of(
        {
            "params": {**base["params"], "train/seed": {"type": "fixed", "value": 3}},
            "budget": {"trials": 99},
        }
    )
    assert incompatibilities(old, same) == []
    edited = spec_of(
        {
            "params": {
                "mask/ratio": {"type": "float", "low": 0.2, "high": 0.9},
                "mask/strategy": {"type": "categorical", "choices": ["random", "block"]},
            }
        }
    )
    assert incompatibilities(old, edited) == [
        "params/mask/ratio: float low=0.1, high=0.9, log=False, step=None -> "
        "float low=0.2, high=0.9, log=False, step=None",
        "params/optim/lr: removed (was float low=0.0001, high=0.01, log=True, step=None)",
        "params/mask/strategy: added (categorical choices=('random', 'block'))",
    ]
