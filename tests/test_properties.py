"""Property-based tests: any valid generated space compiles, samples inside its
distributions, and respects its conditions."""

from __future__ import annotations

import math

import optuna
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spaces import define_by_run, parse_spec
from spaces.compile import nest

optuna.logging.set_verbosity(optuna.logging.WARNING)

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)
choice_values = st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b", "c", "d"]), st.booleans())


@st.composite
def float_param(draw):
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(min_value=1e-4, max_value=10.0))
        high = low * draw(st.floats(min_value=1.0, max_value=1e3))
        return {"type": "float", "low": low, "high": high, "log": True}
    if draw(st.booleans()):  # a stepped range, written as people write it (decimals)
        low = draw(st.integers(-1000, 1000)) / 100
        step = draw(st.integers(1, 500)) / 100
        high = round(low + step * draw(st.integers(0, 10)), 2)
        return {"type": "float", "low": low, "high": high, "step": step}
    low = draw(finite)
    high = low + draw(st.floats(min_value=0.0, max_value=100.0))
    return {"type": "float", "low": low, "high": high}


@st.composite
def int_param(draw):
    log = draw(st.booleans())
    low = draw(st.integers(1 if log else -50, 50))
    high = low + draw(st.integers(0, 100))
    entry = {"type": "int", "low": low, "high": high}
    if log:
        entry["log"] = True
    elif draw(st.booleans()):
        entry["step"] = draw(st.integers(1, 5))
        entry["high"] = low + entry["step"] * draw(st.integers(0, 10))
    return entry


categorical = st.lists(choice_values, min_size=1, max_size=4, unique_by=repr).map(
    lambda cs: {"type": "categorical", "choices": cs}
)
fixed = choice_values.map(lambda v: {"type": "fixed", "value": v})


@st.composite
def spaces(draw):
    n = draw(st.integers(1, 6))
    params: dict = {}
    for i in range(n):
        entry = dict(draw(st.one_of(float_param(), int_param(), categorical, fixed)))
        # a condition on an earlier categorical parameter, sometimes
        earlier = [(k, v) for k, v in params.items() if v["type"] == "categorical"]
        if earlier and draw(st.booleans()):
            name, other = draw(st.sampled_from(earlier))
            allowed = draw(st.lists(st.sampled_from(other["choices"]), min_size=1, unique_by=repr))
            entry["when"] = {name: allowed}
        params[f"g{i % 3}/p{i}"] = entry
    return params


def inside(value, entry):
    kind = entry["type"]
    if kind == "fixed":
        return value == entry["value"]
    if kind == "categorical":
        return any(value == c and type(value) is type(c) for c in entry["choices"])
    low, high = entry["low"], entry["high"]
    if not low - 1e-9 * max(1, abs(low)) <= value <= high + 1e-9 * max(1, abs(high)):
        return False
    if kind == "int":
        return isinstance(value, int) and (value - low) % entry.get("step", 1) == 0
    if "step" in entry:
        k = (value - low) / entry["step"]
        return math.isclose(k, round(k), abs_tol=1e-6)
    return True


def condition_holds(entry, values):
    return all(
        name in values and any(values[name] == a and type(values[name]) is type(a) for a in allowed)
        for name, allowed in entry.get("when", {}).items()
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=spaces(), seed=st.integers(0, 10_000))
def test_valid_spaces_compile_sample_inside_and_respect_conditions(params, seed):
    spec = parse_spec({"params": params}, source="generated", builtin_trainable=False)
    fn = define_by_run(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    for _ in range(5):
        trial = study.ask()
        config = fn(trial)
        values = dict(trial.params)
        values.update({k.removeprefix("fixed/"): v for k, v in trial.user_attrs.items()})
        for name, entry in params.items():
            present = name in values
            assert present == condition_holds(entry, values), (name, values)
            if present:
                assert inside(values[name], entry), (name, values[name], entry)
        # the nested config holds exactly the active values
        assert config == nest(values, {"train": {"epochs": spec.budget.epochs}})
        study.tell(trial, 0.0)


@settings(max_examples=40, deadline=None)
@given(params=spaces())
def test_fixed_trial_reproduces_a_chosen_point_exactly(params):
    spec = parse_spec({"params": params}, source="generated", builtin_trainable=False)
    fn = define_by_run(spec)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    config = fn(trial)
    again = fn(optuna.trial.FixedTrial(dict(trial.params)))
    assert again == config
