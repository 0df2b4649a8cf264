"""Numbers behind the figures: sweep curves with 95 % intervals, and ranking fidelity.

Pure functions over the rows of ``trials.parquet`` / ``curves.parquet``
(``table.to_pylist()``); :mod:`analysis.figures` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr, t

__all__ = ["FidelityPoint", "SweepPoint", "fidelity", "mean_interval", "sweep"]

Row = Mapping[str, Any]


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep curve: the metric's mean over the trials at ``x``.

    Attributes:
        group: the value of the ``by`` parameter (one line each), or None.
        x: the swept value (the mean of the bin for a binned continuous parameter).
        mean, low, high: the mean and its 95 % t-interval (low = high = mean for one trial).
        n: trials (seeds) at this point.
    """

    group: Any
    x: float
    mean: float
    low: float
    high: float
    n: int


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval of the mean.

    Example:
        >>> [round(v, 3) for v in mean_interval([1.0, 2.0, 3.0])]
        [2.0, -0.484, 4.484]
    """
    a = np.asarray(values, dtype=float)
    mean = float(a.mean())
    if len(a) < 2:
        return mean, mean, mean
    half = float(t.ppf(0.5 + level / 2, len(a) - 1) * a.std(ddof=1) / math.sqrt(len(a)))
    return mean, mean - half, mean + half


def sweep(
    rows: Sequence[Row],
    *,
    param: str,
    metric: str,
    by: str | None = None,
    max_values: int = 12,
    bins: int = 6,
) -> list[SweepPoint]:
    """The metric against ``param`` over completed trials, one curve per value of ``by``.

    Trials with the same value of ``param`` (seeds of a grid sweep) are one
    point; a continuous parameter with more than ``max_values`` distinct values
    is cut into ``bins`` quantile bins.

    Example:
        >>> rows = [{"state": "COMPLETE", "param/r": r, "value": v}
        ...         for r, v in [(0.25, 0.5), (0.25, 0.7), (0.75, 0.9)]]
        >>> [(p.x, round(p.mean, 2), p.n) for p in sweep(rows, param="param/r", metric="value")]
        [(0.25, 0.6, 2), (0.75, 0.9, 1)]
    """
    done = [
        r
        for r in rows
        if r.get("state") == "COMPLETE"
        and isinstance(r.get(param), int | float)
        and not isinstance(r.get(param), bool)
        and isinstance(r.get(metric), int | float)
        and math.isfinite(r[metric])
    ]
    groups: dict[Any, list[Row]] = {}
    for r in done:
        groups.setdefault(r.get(by) if by else None, []).append(r)
    points = []
    for group, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        xs = sorted({float(r[param]) for r in members})
        if len(xs) <= max_values:
            cells = {x: [r[metric] for r in members if float(r[param]) == x] for x in xs}
        else:
            edges = np.quantile([float(r[param]) for r in members], np.linspace(0, 1, bins + 1))
            cells = {}
            for i in range(bins):
                inside = [
                    r
                    for r in members
                    if edges[i] <= r[param] and (r[param] < edges[i + 1] or i == bins - 1)
                ]
                if inside:
                    centre = float(np.mean([r[param] for r in inside]))
                    cells[centre] = [r[metric] for r in inside]
        for x, values in sorted(cells.items()):
            mean, low, high = mean_interval(values)
            points.append(SweepPoint(group, x, mean, low, high, len(values)))
    return points


@dataclass(frozen=True)
class FidelityPoint:
    """How well the ranking after ``epoch`` predicts the final ranking.

    Attributes:
        epoch: the epoch the early ranking is taken at.
        spearman: rank correlation with the final values.
        n: trials it rests on (completed trials that reported at ``epoch``).
    """

    epoch: int
    spearman: float
    n: int


def fidelity(
    trial_rows: Sequence[Row], curve_rows: Sequence[Row], *, metric: str
) -> list[FidelityPoint]:
    """Spearman between each epoch's metric and the final metric, over completed trials.

    Example:
        >>> trials = [{"number": i, "state": "COMPLETE"} for i in range(3)]
        >>> curves = [{"trial": i, "epoch": e, "acc": v} for i, (a, b) in
        ...           enumerate([(0.1, 0.3), (0.2, 0.2), (0.3, 0.1)]) for e, v in ((1, a), (2, b))]
        >>> [(p.epoch, round(p.spearman, 2)) for p in fidelity(trials, curves, metric="acc")]
        [(1, -1.0), (2, 1.0)]
    """
    complete = {r["number"] for r in trial_rows if r.get("state") == "COMPLETE"}
    by_trial: dict[int, dict[int, float]] = {}
    for c in curve_rows:
        v = c.get(metric)
        if c["trial"] in complete and isinstance(v, int | float) and math.isfinite(v):
            by_trial.setdefault(c["trial"], {})[int(c["epoch"])] = float(v)
    finals = {n: series[max(series)] for n, series in by_trial.items() if series}
    epochs = sorted({e for series in by_trial.values() for e in series})
    out = []
    for e in epochs:
        pairs = [(series[e], finals[n]) for n, series in by_trial.items() if e in series]
        if len(pairs) < 3:
            continue
        early, final = zip(*pairs, strict=True)
        if len(set(early)) < 2 or len(set(final)) < 2:
            continue
        rho = float(spearmanr(early, final).statistic)
        out.append(FidelityPoint(e, rho, len(pairs)))
    return out
