"""Figures draw exactly the data they are given (read back from the matplotlib objects)."""

from __future__ import annotations

from analysis.curves import SweepPoint
from analysis.figures import learning_curves_figure, sweep_figure


def test_learning_curves_draw_each_trial_sorted_by_epoch_and_mark_pruned_ends():
    trials = [{"number": 0, "state": "COMPLETE"}, {"number": 1, "state": "PRUNED"}]
    curves = [
        {"trial": 0, "epoch": 2, "acc": 0.5},
        {"trial": 0, "epoch": 1, "acc": 0.2},
        {"trial": 1, "epoch": 1, "acc": 0.1},
        {"trial": 1, "epoch": 2, "acc": float("nan")},  # not drawn
    ]
    ax = learning_curves_figure(trials, curves, metric="acc").axes[0]
    drawn = [(list(line.get_xdata()), list(line.get_ydata())) for line in ax.lines]
    assert drawn[0] == ([1, 2], [0.2, 0.5])  # trial 0, sorted by epoch
    assert drawn[1] == ([1], [0.1])  # trial 1 up to its last finite point
    assert ax.lines[2].get_marker() == "x" and drawn[2] == ([1], [0.1])  # pruned there
    assert "2 trials" in ax.get_title()


def test_trials_with_one_point_each_are_visible_dots_on_a_whole_epoch_axis():
    trials = [{"number": n, "state": "COMPLETE"} for n in range(3)]
    curves = [{"trial": n, "epoch": 2, "acc": 0.1 * n} for n in range(3)]
    ax = learning_curves_figure(trials, curves, metric="acc").axes[0]
    assert [line.get_marker() for line in ax.lines[:3]] == ["o", "o", "o"]
    assert [list(line.get_ydata()) for line in ax.lines[:3]] == [[0.0], [0.1], [0.2]]
    assert ax.get_xlim() == (1.0, 3.0)
    ticks = [t for t in ax.get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_a_sweep_draws_one_line_and_band_per_group():
    points = [
        SweepPoint(group=g, x=x, mean=m, low=m - 0.1, high=m + 0.1, n=3)
        for g, base in (("a", 0.0), ("b", 1.0))
        for x, m in ((0.25, base + 0.2), (0.75, base + 0.4))
    ]
    ax = sweep_figure(points, param="param/mask/ratio", metric="value").axes[0]
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.2, 0.4], [1.2, 1.4]]
    assert len(ax.collections) == 2  # the two 95 % bands
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a", "b"]
    assert ax.get_xlabel() == "mask/ratio"
