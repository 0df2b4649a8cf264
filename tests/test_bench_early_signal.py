"""bench/early_signal.py's measures: rank correlation, and replays with Optuna's own pruner."""

from __future__ import annotations

import importlib.util
import math
import random
import sys
from pathlib import Path

import optuna
import pytest
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def es():
    path = ROOT / "bench/early_signal.py"
    spec = importlib.util.spec_from_file_location("bench_early_signal", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_early_signal"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # puts bench/ on sys.path for efficiency's accounting
    return module


def test_spearman_equals_scipy_with_ties(es):
    rng = random.Random(3)
    for _ in range(20):
        xs = [rng.choice([0.1, 0.2, 0.3, 0.5]) for _ in range(12)]
        ys = [rng.random() for _ in range(12)]
        assert es.spearman(xs, ys) == pytest.approx(spearmanr(xs, ys).statistic, abs=1e-12)
    assert math.isnan(es.spearman([1.0, 2.0], [2.0, 1.0]))
    assert math.isnan(es.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_curves_of_keeps_finite_values_by_trial_and_epoch(es):
    rows = [
        {"trial": 0, "epoch": 1, "knn": 0.2},
        {"trial": 0, "epoch": 2, "knn": float("nan")},
        {"trial": 1, "epoch": 1, "knn": None, "loss": 3.0},
        {"trial": 1, "epoch": 2, "knn": 0.4},
    ]
    assert es.curves_of(rows, "knn") == {0: {1: 0.2}, 1: {2: 0.4}}
    assert es.curves_of(rows, "loss") == {1: {1: 3.0}}


def median(startup: int = 2) -> optuna.pruners.MedianPruner:
    return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=0)


def test_replay_prunes_as_the_median_of_completed_trials_says(es):
    # asked at epoch 2 only (every 2, never at the last epoch 4); two startup trials
    signal = {0: {2: 0.5}, 1: {2: 0.7}, 2: {2: 0.4}, 3: {2: 0.9}, 4: {2: 0.61}}
    final = {0: 0.5, 1: 0.6, 2: 0.9, 3: 0.62, 4: 0.7}
    runs = es.replay(
        [0, 1, 2, 3, 4], signal, final, direction="maximize", epochs=4, every=2, pruner=median()
    )
    # median of the completed at epoch 2: 0.6 (0.5, 0.7); then 0.7 (0.5, 0.7, 0.9)
    assert [r.epochs for r in runs] == [4, 4, 2, 4, 2]
    assert [r.final for r in runs] == [0.5, 0.6, None, 0.62, None]
    # read as one to minimise: 0.4 under 0.6 goes on; then the median is 0.5 (0.4, 0.5, 0.7)
    runs = es.replay(
        [0, 1, 2, 3, 4], signal, final, direction="minimize", epochs=4, every=2, pruner=median()
    )
    assert [r.epochs for r in runs] == [4, 4, 4, 2, 2]


def test_replays_count_misses_ratios_and_the_floor(es):
    # trial 0 is the only one within a point of the best, and its signal is the worst:
    # it is pruned whenever it is not the first (startup) trial of a draw
    final = {0: 0.9, 1: 0.5, 2: 0.5}
    bad = {0: {1: 0.1}, 1: {1: 0.5}, 2: {1: 0.5}}
    flat = {t: {1: 0.5} for t in final}  # never below the median: never pruned
    got = es.replays(
        {"bad": (bad, "maximize"), "flat": (flat, "maximize")},
        {"median": {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0}},
        final,
        maximize=True,
        n=3,
        draws=60,
        epochs=3,
        every=1,
        startup=1,
        seed=7,
    )
    rng = random.Random(7)
    orders = [rng.sample([0, 1, 2], 3) for _ in range(60)]
    first = sum(o[0] == 0 for o in orders)
    assert got["median/bad"].missed == pytest.approx((60 - first) / 60)
    assert got["median/bad"].ratio == (1.0 if first > 30 else math.inf)
    # late hits (after the one startup trial): trial 0 is always pruned there
    assert math.isinf(got["median/bad"].late)
    # trial 0 pruned at epoch 1 costs 1 of its 3 epochs; the others always train whole
    assert got["median/bad"].spent == pytest.approx((first + (60 - first) * 7 / 9) / 60)
    assert got["median/flat"] == es.Replayed(ratio=1.0, late=1.0, missed=0.0, spent=1.0)
    # floor: trials before trial 0 stop at epoch 1; none pays 3 per trial up to it
    floors = sorted((3 + o.index(0)) / (3 * (o.index(0) + 1)) for o in orders)
    assert got["floor"].ratio == pytest.approx((floors[29] + floors[30]) / 2)
    assert got["floor"].missed == 0.0
