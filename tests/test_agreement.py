"""Label-free vs labelled agreement against scipy's Spearman and by hand."""

from __future__ import annotations

import math

import pytest
from scipy.stats import spearmanr

from analysis.agreement import agreement, all_agreements
from trainables.catalogue import shipped


def rows_of(pairs, metric="rankme", states=None):
    return [
        {
            "number": i,
            "state": (states or {}).get(i, "COMPLETE"),
            "final/knn_top1": acc,
            f"final/{metric}": score,
        }
        for i, (acc, score) in enumerate(pairs)
    ]


def test_spearman_and_accuracy_lost_for_a_maximised_score():
    pairs = [(0.50, 3.0), (0.70, 5.0), (0.60, 6.0), (0.65, 4.0), (0.40, 1.0)]
    a = agreement(rows_of(pairs), labelled="knn_top1", label_free="rankme", direction="maximize")
    expected = spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    assert a.spearman == pytest.approx(expected)
    assert a.n == 5 and a.selected_trial == 2
    assert a.best_labelled == 0.70 and a.selected_labelled == 0.60
    assert a.accuracy_lost == pytest.approx(0.10)


def test_minimised_scores_are_oriented():
    pairs = [(0.5, 0.9), (0.7, 0.1), (0.6, 0.5)]  # lower alignment = better and more accurate
    a = agreement(
        rows_of(pairs, "alignment"),
        labelled="knn_top1",
        label_free="alignment",
        direction="minimize",
    )
    assert a.spearman == pytest.approx(1.0)
    assert a.accuracy_lost == 0.0 and a.selected_trial == 1


def test_only_completed_finite_trials_count():
    pairs = [(0.5, 1.0), (0.9, 9.0), (0.6, 2.0), (0.7, math.nan), (0.8, 3.0)]
    a = agreement(
        rows_of(pairs, states={1: "PRUNED"}),
        labelled="knn_top1",
        label_free="rankme",
        direction="maximize",
    )
    assert a.n == 3 and a.spearman == pytest.approx(1.0)
    assert (
        agreement(
            rows_of(pairs[:2]), labelled="knn_top1", label_free="rankme", direction="maximize"
        )
        is None
    )


def test_a_constant_score_has_no_spearman_and_no_warning():
    import warnings

    pairs = [(0.5, 2.0), (0.7, 2.0), (0.6, 2.0)]  # e.g. a saturated uniformity
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = agreement(
            rows_of(pairs), labelled="knn_top1", label_free="rankme", direction="maximize"
        )
    assert math.isnan(a.spearman) and a.n == 3
    assert a.selected_trial == 0 and a.accuracy_lost == pytest.approx(0.2)


def test_all_agreements_finds_the_reported_pairs():
    rows = rows_of([(0.5, 1.0), (0.6, 2.0), (0.7, 3.0)])
    found = all_agreements(rows, shipped().metrics())
    assert [(a.labelled, a.label_free) for a in found] == [("knn_top1", "rankme")]
