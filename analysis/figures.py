"""Pure functions: table rows -> matplotlib figure (no pyplot state, no files).

Each takes the rows of ``trials.parquet`` / ``curves.parquet`` (or the numbers
of :mod:`analysis.curves` / :mod:`analysis.importance`) and returns a
:class:`matplotlib.figure.Figure`; :mod:`analysis.report` saves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from analysis.curves import FidelityPoint, SweepPoint
from analysis.importance import Importance

__all__ = [
    "fidelity_figure",
    "importance_figure",
    "learning_curves_figure",
    "parallel_figure",
    "pareto_figure",
    "sweep_figure",
]

Row = Mapping[str, Any]
_STATE_COLOUR = {"COMPLETE": "tab:blue", "PRUNED": "tab:orange", "FAIL": "tab:red"}


def _short(name: str) -> str:
    return name.removeprefix("param/").removeprefix("value/")


def learning_curves_figure(
    trial_rows: Sequence[Row], curve_rows: Sequence[Row], *, metric: str
) -> Figure:
    """Every trial's ``metric`` per epoch; a pruned trial ends in an x where it stopped.

    A trial with one point is drawn as a dot (a line through one point is
    invisible); epochs are whole numbers, and one epoch gets room either side.

    Example:
        >>> fig = learning_curves_figure(
        ...     [{"number": 0, "state": "PRUNED"}],
        ...     [{"trial": 0, "epoch": 1, "acc": 0.2}, {"trial": 0, "epoch": 2, "acc": 0.3}],
        ...     metric="acc")
        >>> [line.get_marker() for line in fig.axes[0].lines]  # curve, pruned x, legend entry
        ['None', 'x', 'None']
    """
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.add_subplot()
    state = {r["number"]: r["state"] for r in trial_rows}
    series: dict[int, list[tuple[int, float]]] = {}
    for c in curve_rows:
        v = c.get(metric)
        if isinstance(v, int | float) and math.isfinite(v):
            series.setdefault(c["trial"], []).append((int(c["epoch"]), float(v)))
    for number, points in sorted(series.items()):
        points.sort()
        xs, ys = zip(*points, strict=True)
        s = state.get(number, "COMPLETE")
        colour = _STATE_COLOUR.get(s, "tab:gray")
        ax.plot(
            xs,
            ys,
            color=colour,
            alpha=0.8 if s == "COMPLETE" else 0.45,
            linewidth=1,
            marker="o" if len(xs) == 1 else None,
            markersize=4,
        )
        if s == "PRUNED":
            ax.plot([xs[-1]], [ys[-1]], marker="x", color=colour, markersize=6, linestyle="")
    for s, colour in _STATE_COLOUR.items():
        if s in state.values():
            ax.plot([], [], color=colour, label=s.lower())
    epochs = {x for points in series.values() for x, _ in points}
    if len(epochs) == 1:  # one epoch: not an axis of 1.90-2.10
        (only,) = epochs
        ax.set_xlim(only - 1, only + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(f"Learning curves ({len(series)} trials; x = pruned there)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def sweep_figure(points: Sequence[SweepPoint], *, param: str, metric: str) -> Figure:
    """Mean metric vs the swept parameter with its 95 % interval, one line per group."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    groups: dict[Any, list[SweepPoint]] = {}
    for p in points:
        groups.setdefault(p.group, []).append(p)
    for group, members in groups.items():
        xs = [p.x for p in members]
        line = ax.plot(
            xs, [p.mean for p in members], marker="o", label=None if group is None else str(group)
        )[0]
        ax.fill_between(
            xs,
            [p.low for p in members],
            [p.high for p in members],
            alpha=0.2,
            color=line.get_color(),
        )
    seeds = max((p.n for p in points), default=0)
    ax.set_xlabel(_short(param))
    ax.set_ylabel(_short(metric))
    ax.set_title(
        f"{_short(metric)} vs {_short(param)}\nmean, 95 % interval, up to {seeds} trials a point",
        fontsize=10,
    )
    if len(groups) > 1:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def importance_figure(importances: Sequence[Importance]) -> Figure:
    """Horizontal bars per evaluator (PED-ANOVA, fANOVA) side by side."""
    shown = [imp for imp in importances if imp.values]
    rows = max([4, *(len(i.values) for i in shown)])
    fig = Figure(figsize=(5 * max(1, len(shown)), 0.4 * rows + 1.2), layout="constrained")
    if not shown:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "too few completed trials", ha="center", va="center")
        ax.set_axis_off()
        return fig
    for k, imp in enumerate(shown):
        ax = fig.add_subplot(1, len(shown), k + 1)
        names = list(imp.values)[::-1]
        ax.barh([_short(n) for n in names], [imp.values[n] for n in names], color="tab:green")
        ax.set_xlabel("importance (sums to 1)")
        ax.set_title(f"{imp.evaluator} ({imp.n_trials} trials)")
        ax.grid(axis="x", alpha=0.3)
    return fig


def parallel_figure(
    trial_rows: Sequence[Row],
    *,
    params: Sequence[str],
    metric: str,
    direction: str,
    top: int = 10,
    label: str | None = None,
) -> Figure:
    """Parallel coordinates of the ``top`` completed trials (each axis scaled to its range).

    ``metric`` is the column ranked by (e.g. ``value``), ``label`` its name on the plot.
    """
    done = [
        r
        for r in trial_rows
        if r.get("state") == "COMPLETE" and isinstance(r.get(metric), int | float)
    ]
    done.sort(key=lambda r: r[metric], reverse=direction == "maximize")
    best = done[:top]
    axes = [*params, metric]
    fig = Figure(figsize=(max(6, 1.4 * len(axes)), 4), layout="constrained")
    ax = fig.add_subplot()
    scaled: dict[str, list[float]] = {}
    labels: dict[str, tuple[str, str]] = {}
    for name in axes:
        raw = [r.get(name) for r in done]
        if all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in raw if v is not None
        ):
            nums = [float(v) for v in raw if v is not None]
            lo, hi = (min(nums), max(nums)) if nums else (0.0, 1.0)
            span = (hi - lo) or 1.0
            scaled[name] = [math.nan if v is None else (float(v) - lo) / span for v in raw]
            labels[name] = (f"{lo:.3g}", f"{hi:.3g}")
        else:
            cats = sorted({str(v) for v in raw})
            pos = {c: i / max(1, len(cats) - 1) for i, c in enumerate(cats)}
            scaled[name] = [pos[str(v)] for v in raw]
            labels[name] = (cats[0] if cats else "", cats[-1] if cats else "")
    if best:
        values = [r[metric] for r in best]
        lo, hi = min(values), max(values)
        cmap = matplotlib.colormaps["viridis"]
        for i, r in enumerate(best):
            shade = (r[metric] - lo) / ((hi - lo) or 1.0)
            ys = [scaled[name][done.index(r)] for name in axes]
            ax.plot(
                range(len(axes)),
                ys,
                color=cmap(shade if direction == "maximize" else 1 - shade),
                alpha=0.9,
                linewidth=2 if i == 0 else 1,
                marker="o",
                markersize=3,
            )
    names = [_short(a) for a in params] + [label or _short(metric)]
    ax.set_xticks(range(len(axes)), names, rotation=20, ha="right", fontsize=8)
    for i, name in enumerate(axes):
        ax.axvline(i, color="gray", linewidth=0.5)
        ax.annotate(
            labels[name][0], (i, 0), textcoords="offset points", xytext=(2, -10), fontsize=7
        )
        ax.annotate(labels[name][1], (i, 1), textcoords="offset points", xytext=(2, 4), fontsize=7)
    ax.set_yticks([])
    ax.set_ylim(-0.1, 1.15)
    ax.set_title(f"Top {len(best)} trials by {label or _short(metric)} (bold = best)")
    return fig


def pareto_figure(
    trial_rows: Sequence[Row],
    *,
    metrics: Sequence[str],
    directions: Sequence[str],
    front: Sequence[int],
) -> Figure:
    """Completed trials on the first two objectives; Optuna's Pareto front (``front``) joined."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    x, y = metrics[0], metrics[1]
    done = [r for r in trial_rows if r.get("state") == "COMPLETE"]
    ax.scatter([r[x] for r in done], [r[y] for r in done], color="tab:gray", s=14, label="trials")
    best = sorted((r for r in done if r["number"] in set(front)), key=lambda r: r[x])
    ax.plot(
        [r[x] for r in best],
        [r[y] for r in best],
        color="tab:red",
        marker="o",
        label=f"Pareto front ({len(best)})",
    )
    for r in best:
        ax.annotate(
            str(r["number"]), (r[x], r[y]), fontsize=7, xytext=(3, 3), textcoords="offset points"
        )
    ax.set_xlabel(f"{_short(x)} ({directions[0]})")
    ax.set_ylabel(f"{_short(y)} ({directions[1]})")
    ax.set_title("Pareto front")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def fidelity_figure(points: Sequence[FidelityPoint], *, metric: str) -> Figure:
    """Spearman(ranking at epoch e, final ranking) against e."""
    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([p.epoch for p in points], [p.spearman for p in points], marker="o")
    ax.axhline(1.0, color="gray", linewidth=0.5)
    ax.set_ylim(min([-0.1, *(p.spearman - 0.05 for p in points)]), 1.05)
    ax.set_xlabel("epoch e")
    ax.set_ylabel("Spearman with final ranking")
    n = max((p.n for p in points), default=0)
    ax.set_title(f"Fidelity of {metric} after e epochs ({n} completed trials)")
    ax.grid(alpha=0.3)
    return fig
