"""Effects: least squares on the search scale (equal to scikit-learn's), bootstrap CIs,
directions and the answer's sentences."""

from __future__ import annotations

import math
import random

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from sklearn.linear_model import LinearRegression

from analysis.effects import effects
from analysis.evidence import Evidence

DISTS = {
    "x": FloatDistribution(0.0625, 1.0, log=True),
    "w": FloatDistribution(0.0, 1.0),
    "c": CategoricalDistribution(["a", "b", "d"]),
}


def _evidence(n=40, direction="maximize", noise=0.02, seed=0, value=None):
    rng = random.Random(seed)
    trials = []
    for _ in range(n):
        p = {"x": math.exp(rng.uniform(math.log(0.0625), 0.0)), "w": rng.random()}
        p["c"] = rng.choice(["a", "b", "d"])
        v = value(p) if value else 0.8 - 0.2 * (math.log(p["x"] / 0.0625) / math.log(16))
        v += 0.1 * (p["c"] == "d") + rng.gauss(0, noise)
        trials.append(optuna.trial.create_trial(params=p, distributions=DISTS, value=v))
    return Evidence("acc", direction, 10, tuple(trials), 5, n, 18)


def test_sizes_are_the_least_squares_fit_on_the_search_scale():
    ev = _evidence()
    found = {(e.param, e.high): e for e in effects(ev, n_boot=200)}
    x = np.array(
        [
            [
                math.log(t.params["x"] / 0.0625) / math.log(16),
                t.params["w"],
                t.params["c"] == "b",
                t.params["c"] == "d",
            ]
            for t in ev.trials
        ],
        dtype=float,
    )
    ref = LinearRegression().fit(x, ev.values()).coef_
    assert found[("x", 1.0)].size == pytest.approx(ref[0])
    assert found[("w", 1.0)].size == pytest.approx(ref[1])
    assert found[("c", "b")].size == pytest.approx(ref[2])
    assert found[("c", "d")].size == pytest.approx(ref[3])
    assert found[("x", 1.0)].size == pytest.approx(-0.2, abs=0.03)  # the planted truth


def test_intervals_hold_the_truth_and_decide_direction_and_sentences():
    ev = _evidence()
    found = {(e.param, e.high): e for e in effects(ev, n_boot=500)}
    x, w, d = found[("x", 1.0)], found[("w", 1.0)], found[("c", "d")]
    assert x.ci[0] < -0.2 < x.ci[1] and x.determined and x.better == 0.0625
    assert x.sentence("knn").startswith("lower `x` is better: -0.")
    assert "from 0.0625 to 1 (95 % CI -0." in x.sentence("knn")
    assert w.ci[0] < 0 < w.ci[1] and not w.determined and w.better is None
    assert w.sentence("knn").startswith("`w`: not determined from 40 trials (")
    assert d.determined and d.better == "d"
    assert d.sentence("knn").startswith("`c`: d is better than a: +0.")
    assert next(iter(found.values())).param == "x"  # largest effect first


def test_minimising_flips_which_end_is_better():
    ev = _evidence(direction="minimize")
    x = next(e for e in effects(ev, n_boot=200) if e.param == "x")
    assert x.size < 0 and x.better == 1.0
    assert x.sentence("loss").startswith("higher `x` is better")


def test_too_few_trials_or_no_variation_give_no_effect():
    assert effects(_evidence(n=5), n_boot=50) == []
    ev = _evidence(value=lambda p: 0.5)
    fixed = Evidence("acc", "maximize", 1, ev.trials[:10], 0, 10, 1)
    assert {e.param for e in effects(fixed, params=["x"], n_boot=50)} == {"x"}
    same = [
        optuna.trial.create_trial(params={"w": 0.5}, distributions={"w": DISTS["w"]}, value=v)
        for v in range(10)
    ]
    assert effects(Evidence("acc", "maximize", 1, tuple(same), 0, 10, 1), n_boot=50) == []


def test_a_conditional_parameter_is_fitted_on_the_trials_that_have_it():
    rng = random.Random(1)
    dist = {"w": DISTS["w"], "z": FloatDistribution(0, 1)}
    trials = []
    for i in range(30):
        p = {"w": rng.random()}
        if i % 2:
            p["z"] = rng.random()
        v = 0.3 * p.get("z", 0.0) + rng.gauss(0, 0.01)
        trials.append(
            optuna.trial.create_trial(params=p, distributions={k: dist[k] for k in p}, value=v)
        )
    found = {e.param: e for e in effects(Evidence("a", "maximize", 1, tuple(trials), 0, 30, 1))}
    assert found["z"].n == 15 and found["z"].size == pytest.approx(0.3, abs=0.03)
    assert found["w"].n == 30


def test_the_bootstrap_is_seeded():
    ev = _evidence()
    assert effects(ev, n_boot=100, seed=3) == effects(ev, n_boot=100, seed=3)
