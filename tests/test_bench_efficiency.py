"""The accounting of bench/efficiency.py: anytime curves, cost to target, the medians."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def eff():
    spec = importlib.util.spec_from_file_location("bench_efficiency", ROOT / "bench/efficiency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_efficiency"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def runs(eff, rows):
    return [eff.Ran(start=s, end=e, epochs=n, final=f) for s, e, n, f in rows]


def test_anytime_counts_every_trial_in_start_order(eff):
    r = runs(
        eff,
        [
            (2.0, 9.0, 12, 0.50),  # started second, finished last
            (0.0, 3.0, 3, None),  # stopped early: its epochs count, no final score
            (4.0, 6.0, 12, 0.70),
            (5.0, 7.0, 1, None),
        ],
    )
    curve = eff.anytime(r, maximize=True)
    assert [x for x, _ in curve] == [3, 15, 27, 28]
    assert math.isnan(curve[0][1])
    assert [y for _, y in curve[1:]] == [0.50, 0.70, 0.70]
    low = eff.anytime(r, maximize=False)
    assert [y for _, y in low[1:]] == [0.50, 0.50, 0.50]


def test_cost_to_target_charges_the_trials_started_before_the_first_hit(eff):
    r = runs(
        eff,
        [
            (0.0, 5.0, 12, 0.60),
            (1.0, 2.0, 2, None),
            (3.0, 11.0, 12, 0.80),  # the first (by start) to reach 0.79
            (4.0, 9.0, 12, 0.85),  # started later, finished earlier
            (10.0, 12.0, 4, None),
        ],
    )
    epochs, wall = eff.cost_to(r, 0.79, maximize=True)
    assert epochs == 12 + 2 + 12
    assert wall == 9.0  # the target was first in hand when the later-started trial ended
    assert eff.cost_to(r, 0.9, maximize=True) == (math.inf, math.inf)
    assert eff.cost_to(r, 0.61, maximize=False) == (12.0, 5.0)


def test_summary_medians_ratios_and_points(eff):
    none = {
        0: runs(eff, [(0, 1, 10, 0.50), (1, 2, 10, 0.80), (2, 3, 10, 0.70)]),
        1: runs(eff, [(0, 1, 10, 0.90), (1, 2, 10, 0.60), (2, 3, 10, 0.60)]),
        2: runs(eff, [(0, 1, 10, 0.40), (1, 2, 10, 0.40), (2, 3, 10, 0.75)]),
    }
    pruned = {
        0: runs(eff, [(0, 1, 2, None), (1, 2, 10, 0.795), (2, 3, 2, None)]),  # within 1 point
        1: runs(eff, [(0, 1, 10, 0.85), (1, 2, 2, None), (2, 3, 2, None)]),  # 5 points short
        2: runs(eff, [(0, 1, 2, None), (1, 2, 2, None), (2, 3, 10, 0.76)]),  # better
    }
    s = eff.summarise({"none": none, "sslsearch": pruned}, maximize=True)
    # none's cost to its own best minus a point: 20, 10, 30 -> median 20
    assert s["none"]["epochs_to_target"] == 20
    # pruned: 12, never, 14 -> median 14
    assert s["sslsearch"]["epochs_to_target"] == 14
    assert s["sslsearch"]["reached"] == 2
    assert s["sslsearch"]["trial_epochs"] == 14
    assert s["sslsearch"]["loss_points"] == pytest.approx(0.5)  # +0.5, +5, -1 -> 0.5
    assert eff._ratio(14, 20) == pytest.approx(0.7)
    assert eff._ratio(14, math.inf) == 0.0
    assert math.isnan(eff._ratio(math.inf, math.inf))


def test_least_cost_stops_every_trial_before_the_first_hit_at_its_first_probe(eff):
    r = runs(
        eff,
        [
            (0.0, 5.0, 12, 0.60),
            (1.0, 2.0, 2, None),  # stopped before the first probe: its 2 epochs stand
            (3.0, 11.0, 12, 0.80),  # the first (by start) to reach 0.79
            (4.0, 9.0, 12, 0.85),  # started after it: not charged
        ],
    )
    assert eff.least_cost(r, 0.79, maximize=True, first_probe=3) == 3 + 2 + 12
    assert eff.least_cost(r, 0.79, maximize=True, first_probe=1) == 1 + 1 + 12
    assert eff.least_cost(r, 0.9, maximize=True, first_probe=3) == math.inf
    assert eff.least_cost(r, 0.61, maximize=False, first_probe=3) == 12  # the first trial
    none = {0: r, 1: runs(eff, [(0, 1, 12, 0.5), (1, 2, 12, 0.9)])}
    s = eff.summarise({"none": none}, maximize=True, first_probe=3)
    # targets 0.84 and 0.89: seed 0 -> 3+2+3+12 = 20 (cost 38), seed 1 -> 3+12 = 15 (24)
    assert s["none"]["least_to_target"] == pytest.approx(17.5)
    assert s["none"]["epochs_to_target"] == pytest.approx(31.0)
