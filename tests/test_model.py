"""Parameter kinds carry their behaviour: parse, sample, values, ends, grid axis, PBT, text."""

from __future__ import annotations

import optuna
import pytest
from ray import tune

from spaces.errors import Problems
from spaces.model import (
    KINDS,
    CategoricalParam,
    FixedParam,
    FloatParam,
    GridParam,
    IntParam,
    same_value,
)

PARAMS = [
    FloatParam("a", 0.1, 0.9, log=True),
    FloatParam("b", 0.0, 1.0, step=0.25),
    IntParam("c", 2, 8, step=2),
    CategoricalParam("d", ("x", 1, True)),
    GridParam("e", (0.25, 0.5)),
    FixedParam("f", "z", when=(("d", ("x",)),)),
]


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.kind)
def test_each_kind_parses_back_from_its_own_serialisation(param):
    entry = param.to_dict()
    assert entry["type"] == param.kind
    problems = Problems("inline", {})
    raw = {k: v for k, v in entry.items() if k != "when"}
    parsed = KINDS[param.kind].parse(param.name, raw, ("params", param.name), problems)
    assert not problems.items
    assert parsed.to_dict() == {k: v for k, v in entry.items() if k != "when"}


@pytest.mark.parametrize("param", PARAMS, ids=lambda p: p.kind)
def test_sampled_values_lie_in_what_the_kind_says_it_can_take(param):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        value = param.suggest(study.ask())
        assert param.contains(value)
        finite = param.possible_values()
        assert finite is None or any(same_value(value, v) for v in finite)


def test_ends_grid_axes_and_sampled_flags():
    a, _, c, d, _, f = PARAMS
    assert a.ends() == (0.1, 0.9) and c.ends() == (2, 4, 6, 8) and d.ends() == ("x", 1, True)
    # an int range visits every value when it has few (one inside may be the bad one)
    assert IntParam("n", 1, 16).ends() == tuple(range(1, 17))
    assert IntParam("n", 1, 17).ends() == (1, 17)
    assert [p.grid_axis() for p in PARAMS] == [None, None, None, ["x", 1, True], [0.25, 0.5], None]
    assert [p.sampled for p in PARAMS] == [True, True, True, True, True, False]
    assert [p.is_range for p in PARAMS] == [True, True, True, False, False, False]
    assert not d.contains(1.0) and d.contains(1)  # 1.0 is not the choice 1
    assert not f.active({"d": 1}) and f.active({"d": "x"})


def test_pbt_domains_are_tune_domains_of_the_same_range():
    a, b, c, d = PARAMS[:4]
    assert isinstance(a.pbt_domain(tune), tune.search.sample.Float)
    assert (a.pbt_domain(tune).lower, a.pbt_domain(tune).upper) == (0.1, 0.9)
    assert isinstance(b.pbt_domain(tune).get_sampler(), tune.search.sample.Quantized)
    assert (c.pbt_domain(tune).lower, c.pbt_domain(tune).upper) == (2, 8)
    assert d.pbt_domain(tune) == ["x", 1, True]
    assert c.coerce(4.6) == 5 and isinstance(a.coerce(1), float)


def test_descriptions():
    a, _, c, d, _, f = PARAMS
    assert a.describe() == "float low=0.1, high=0.9, log=True, step=None"
    assert f.describe() == "fixed value='z' when d in ['x']"
    assert a.display() == "float [0.1, 0.9] log" and c.display() == "int [2, 8] step 2"
    assert d.display() == "categorical ['x', 1, True]" and f.display() == "fixed 'z'"
