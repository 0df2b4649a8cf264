"""Sweep curves with t intervals, quantile bins and ranking fidelity, against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis.curves import fidelity, mean_interval, sweep


def test_sweep_points_are_means_with_t_intervals():
    rng = np.random.default_rng(0)
    rows = []
    for strategy in ("random", "block"):
        for ratio in (0.25, 0.5, 0.75):
            for _seed in range(3):
                rows.append(
                    {
                        "state": "COMPLETE",
                        "param/mask/ratio": ratio,
                        "param/mask/strategy": strategy,
                        "value": float(rng.normal(ratio, 0.05)),
                    }
                )
    rows.append(
        {"state": "PRUNED", "param/mask/ratio": 0.5, "param/mask/strategy": "block", "value": 9.0}
    )
    points = sweep(rows, param="param/mask/ratio", metric="value", by="param/mask/strategy")
    assert [(p.group, p.x, p.n) for p in points] == [
        (s, r, 3) for s in ("block", "random") for r in (0.25, 0.5, 0.75)
    ]  # pruned trials are not in the curve
    for p in points:
        values = [
            r["value"]
            for r in rows[:-1]
            if r["param/mask/strategy"] == p.group and r["param/mask/ratio"] == p.x
        ]
        low, high = stats.t.interval(0.95, len(values) - 1, np.mean(values), stats.sem(values))
        assert (p.mean, p.low, p.high) == pytest.approx((np.mean(values), low, high))
    assert mean_interval([0.5]) == (0.5, 0.5, 0.5)


def test_a_continuous_parameter_is_cut_into_quantile_bins():
    rows = [
        {"state": "COMPLETE", "param/lr": float(x), "value": float(x)}
        for x in np.linspace(0, 1, 60)
    ]
    points = sweep(rows, param="param/lr", metric="value", bins=6)
    assert [p.n for p in points] == [10] * 6
    assert [p.x for p in points] == pytest.approx([p.mean for p in points])  # y = x


def test_fidelity_is_spearman_of_each_epoch_with_the_final_ranking():
    rng = np.random.default_rng(1)
    trials = [{"number": i, "state": "COMPLETE"} for i in range(8)] + [
        {"number": 8, "state": "PRUNED"}
    ]
    curves = []
    for i in range(9):
        for e in (2, 4, 6):
            curves.append({"trial": i, "epoch": e, "acc": float(rng.random())})
    points = fidelity(trials, curves, metric="acc")
    final = {c["trial"]: c["acc"] for c in curves if c["epoch"] == 6 and c["trial"] < 8}
    for p in points:
        early = {c["trial"]: c["acc"] for c in curves if c["epoch"] == p.epoch and c["trial"] < 8}
        rho = stats.spearmanr([early[i] for i in range(8)], [final[i] for i in range(8)]).statistic
        assert p.spearman == pytest.approx(rho) and p.n == 8
    assert points[-1].spearman == pytest.approx(1.0)
