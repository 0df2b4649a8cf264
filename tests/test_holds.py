"""analysis.holds: rank agreement, regret, ties and label-free selection, against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from analysis.confirm import Candidate, ConfirmPlan, LongRun
from analysis.holds import ConfigResult, Confirmation, holds_sentences, judge

METRICS = {
    "knn_top1": {"labels": True, "headline": True, "direction": "maximize", "ceiling": 1.0},
    "rankme": {"labels": False, "headline": True, "direction": "maximize"},
    "alpha_req": {"labels": False, "headline": True, "direction": "minimize"},
    "alpha_req_alpha": {"labels": False, "headline": False, "direction": None},
}


def _plan_and_runs(shorts, longs, label_free=None):
    """Candidates ranked by ``shorts``; ``longs[i]``: configuration i's long values."""
    order = sorted(range(len(shorts)), key=lambda i: -shorts[i])
    cands = tuple(
        Candidate(f"c{i}", {"x": i / 10}, (i,), shorts[i], order.index(i) + 1, "top")
        for i in range(len(shorts))
    )
    plan = ConfirmPlan(top=len(shorts), controls=0, epochs=10, seeds=3, candidates=cands)
    runs = [
        LongRun(f"c{i}", seed, "COMPLETE", {"knn_top1": v, "rankme": 10.0 * v})
        for i, values in enumerate(longs)
        for seed, v in enumerate(values)
    ]
    short_metrics = {i: {"rankme": s} for i, s in enumerate(label_free or [])}
    return plan, runs, short_metrics


def test_rank_agreement_regret_and_ties_against_scipy():
    shorts = [0.9, 0.8, 0.7, 0.6, 0.5]
    longs = [
        [0.80, 0.81, 0.79],
        [0.86, 0.85, 0.87],  # the long-run best: short rank 2
        [0.70, 0.71, 0.69],
        [0.72, 0.71, 0.73],
        [0.50, 0.52, 0.51],
    ]
    plan, runs, _ = _plan_and_runs(shorts, longs)
    runs.append(LongRun("c4", 9, "FAIL", {}, "diverged"))
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    means = [float(np.mean(v)) for v in longs]
    assert [r.candidate.rank for r in c.configs] == [1, 2, 3, 4, 5]
    assert c.spearman == pytest.approx(spearmanr(shorts, means).statistic)
    assert c.kendall == pytest.approx(kendalltau(shorts, means).statistic)
    assert c.spearman_ci[0] <= c.spearman <= c.spearman_ci[1] + 1e-9
    assert c.long_best.candidate.rank == 2 and c.regret == pytest.approx(0.06)
    assert c.tied is False  # 0.80 vs 0.86 with sd 0.01: well apart
    assert c.configs[4].failed == 1 and len(c.configs[4].values) == 3
    lo, hi = c.configs[0].low, c.configs[0].high
    assert lo < 0.80 < hi and hi - lo == pytest.approx(2 * 4.303 * 0.01 / math.sqrt(3), rel=1e-3)
    text = " ".join(holds_sentences(c, points=True))
    assert "regret 0.06 (6.0 points)" in text and "beyond the seeds' noise" in text

    # seeds that cannot tell the winner from the long-run best: tied
    noisy = [[0.80, 0.70, 0.90], [0.86, 0.76, 0.96], *longs[2:]]
    plan, runs, _ = _plan_and_runs(shorts, noisy)
    assert judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS).tied


def test_the_configurations_tied_with_the_long_run_best_are_named():
    from scipy.stats import ttest_ind

    shorts = [0.9, 0.8, 0.7, 0.6, 0.5]
    longs = [
        [0.80, 0.70, 0.90],
        [0.86, 0.76, 0.96],  # the long-run best, spread wide
        [0.70, 0.71, 0.69],
        [0.72, 0.71, 0.73],
        [0.50, 0.52, 0.51],
    ]
    plan, runs, _ = _plan_and_runs(shorts, longs)
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    expected = [
        i + 1 for i in (0, 2, 3, 4) if ttest_ind(longs[i], longs[1], equal_var=False).pvalue >= 0.05
    ]
    assert expected == [1, 3, 4]  # the last control is apart even from a wide best
    assert [t.candidate.rank for t in c.tied_with_best] == expected
    assert holds_sentences(c)[-1] == (
        "At full length 3 other configuration(s) of 5 (short ranks 1, 3, 4) are tied with the "
        "long-run best (Welch, 5 %): the order among these 4 is the seeds', and so is that "
        "part of the rank agreement."
    )
    # seeds far tighter than the differences: none tied, nothing said
    plan, runs, _ = _plan_and_runs(shorts, [[v, v + 0.001, v - 0.001] for v in (8, 9, 7, 6, 5)])
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    assert c.tied_with_best == () and "tied with the long-run best" not in " ".join(
        holds_sentences(c)
    )
    # one seed each: a tie cannot be tested
    plan, runs, _ = _plan_and_runs(shorts, [[v] for v in (8, 9, 7, 6, 5)])
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    assert c.tied_with_best is None


def test_minimised_objectives_and_a_winner_that_holds():
    plan, runs, _ = _plan_and_runs([3.0, 2.0, 1.0], [[0.1, 0.1], [0.2, 0.3], [0.5, 0.4]])
    # as a loss: the lowest short value ranks first in the plan, so re-rank it
    cands = tuple(
        Candidate(c.key, c.params, c.trials, c.short, 4 - c.rank, c.role) for c in plan.candidates
    )
    plan = ConfirmPlan(top=3, controls=0, epochs=10, seeds=2, candidates=cands)
    runs = [LongRun(r.key, r.seed, r.state, {"loss": r.metrics["knn_top1"]}) for r in runs]
    c = judge(plan, runs, metric="loss", direction="minimize", metrics=METRICS)
    assert c.winner.candidate.key == "c2" and c.long_best.candidate.key == "c0"
    assert c.regret == pytest.approx(0.45 - 0.1)
    assert c.spearman == pytest.approx(-1.0)  # short and long disagree entirely
    plan, runs, _ = _plan_and_runs([0.9, 0.5, 0.1], [[0.9, 0.91], [0.5, 0.52], [0.1, 0.12]])
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    assert c.regret == 0 and c.tied is True and c.spearman == pytest.approx(1.0)
    assert "is also the long-run best" in holds_sentences(c)[1]


def test_label_free_selection_is_judged_on_the_long_labelled_score():
    shorts = [0.9, 0.8, 0.7, 0.6]
    longs = [[0.70, 0.72], [0.80, 0.82], [0.60, 0.62], [0.50, 0.52]]
    # rankme (maximised), as the search measured it, prefers configuration 1, then 0, 2, 3
    plan, runs, short_metrics = _plan_and_runs(shorts, longs, label_free=[5.0, 9.0, 3.0, 1.0])
    for values in short_metrics.values():
        values["alpha_req"] = 0.25  # the same for every configuration: it chooses nothing
    c = judge(
        plan,
        runs,
        metric="knn_top1",
        direction="maximize",
        metrics=METRICS,
        short_metrics=short_metrics,
    )
    [p] = c.proxies
    assert (p.metric, p.n, p.picked) == ("rankme", 4, "c1")
    assert p.spearman == pytest.approx(1.0)
    assert p.lost == pytest.approx(0.0) and p.vs_labelled == pytest.approx(0.81 - 0.71)
    assert c.labelled == "knn_top1"


def test_too_few_configurations_give_no_correlation_but_still_a_verdict():
    c = Confirmation(
        "knn_top1", "maximize", (), math.nan, (math.nan,) * 2, math.nan, (math.nan,) * 2, 0.0, None
    )
    assert c.configs == ()
    plan, runs, _ = _plan_and_runs([0.9, 0.8], [[0.7], [0.75]])
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    assert math.isnan(c.spearman) and c.tied is None and c.regret == pytest.approx(0.05)
    assert "too few" in holds_sentences(c)[0]
    assert judge(plan, [], metric="knn_top1", direction="maximize", metrics=METRICS) is None


def test_config_results_keep_every_metric_per_seed():
    plan, runs, _ = _plan_and_runs([0.9, 0.8, 0.7], [[0.7, 0.8], [0.6, 0.65], [0.5, 0.55]])
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    assert isinstance(c.configs[0], ConfigResult)
    assert c.configs[0].metrics["rankme"] == pytest.approx((7.0, 8.0))
