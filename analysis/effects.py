"""Which way each parameter pushes the objective, how far, and how sure that is.

Importance says *that* a parameter matters; the answer also needs *which way*.
:func:`effects` fits one least-squares model to the evidence
(:mod:`analysis.evidence`): the objective against every sampled numeric
parameter on the scale it is searched on (log for a log range), each mapped
to 0 at its low end and 1 at its high end, plus an indicator per categorical
choice (against the first). A numeric parameter's effect is then the change
in the objective from the low to the high end of its range with the others
held fixed; a choice's, the change from the first choice to it. The 95 %
interval is the percentile bootstrap over trials (``n_boot`` resamples,
seeded). An effect whose interval holds 0 is "not determined". A parameter
present in only some trials (a conditional one) is fitted alone, on those.

This is the linear trend across the range: an optimum in the middle of a
range shows as a small effect (the importance still ranks it); read the
sweep figure for its shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from analysis.evidence import Evidence

__all__ = ["Effect", "effects"]


@dataclass(frozen=True)
class Effect:
    """One parameter's (or one choice's) effect on the objective.

    Attributes:
        param: the parameter.
        low, high: what the effect compares (range ends, or reference and choice).
        size: objective at ``high`` minus at ``low``.
        ci: its 95 % bootstrap interval.
        n: trials it rests on.
        direction: the objective's direction.
    """

    param: str
    low: object
    high: object
    size: float
    ci: tuple[float, float]
    n: int
    direction: str

    @property
    def determined(self) -> bool:
        """The interval excludes 0 (a sign the data supports)."""
        return self.ci[0] > 0 or self.ci[1] < 0

    @property
    def better(self) -> object | None:
        """Which end is better (``low`` or ``high``'s value), None if not determined."""
        if not self.determined:
            return None
        up = self.size > 0
        return self.high if up == (self.direction == "maximize") else self.low

    def sentence(self, metric: str) -> str:
        """The answer's sentence for this parameter."""
        ci = f"95 % CI {self.ci[0]:+.3g} to {self.ci[1]:+.3g}"
        span = f"{_show(self.low)} to {_show(self.high)}"
        if not self.determined:
            return (
                f"`{self.param}`: not determined from {self.n} trials "
                f"({self.size:+.3g} {metric} from {span}, {ci})"
            )
        if isinstance(self.low, int | float) and not isinstance(self.low, bool):
            word = "higher" if self.better == self.high else "lower"
            lead = f"{word} `{self.param}` is better"
        else:
            worse = self.low if self.better == self.high else self.high
            lead = f"`{self.param}`: {_show(self.better)} is better than {_show(worse)}"
        return f"{lead}: {self.size:+.3g} {metric} from {span} ({ci}; {self.n} trials)"


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _columns(dist: BaseDistribution, values: list[object]) -> list[tuple[object, object, list]]:
    """The design columns of one parameter: ``(low, high, column)`` for each."""
    if isinstance(dist, FloatDistribution | IntDistribution):
        low, high = float(dist.low), float(dist.high)
        if high <= low:
            return []
        if dist.log:
            lo, hi = math.log(low), math.log(high)
            col = [(math.log(float(v)) - lo) / (hi - lo) for v in values]  # type: ignore[arg-type]
        else:
            col = [(float(v) - low) / (high - low) for v in values]  # type: ignore[arg-type]
        return [(dist.low, dist.high, col)]
    if isinstance(dist, CategoricalDistribution) and len(dist.choices) > 1:
        ref = dist.choices[0]
        return [(ref, c, [float(v == c) for v in values]) for c in dist.choices[1:]]
    return []


def _fit(
    names: list[tuple[str, object, object]],
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
) -> list[tuple[str, object, object, float, tuple[float, float]]]:
    design = np.column_stack([np.ones(len(y)), x])
    coef = np.linalg.lstsq(design, y, rcond=None)[0][1:]
    boots = np.empty((n_boot, x.shape[1]))
    for b in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        boots[b] = np.linalg.lstsq(design[idx], y[idx], rcond=None)[0][1:]
    lo, hi = np.percentile(boots, [2.5, 97.5], axis=0)
    return [
        (name, low, high, float(coef[j]), (float(lo[j]), float(hi[j])))
        for j, (name, low, high) in enumerate(names)
    ]


def effects(
    evidence: Evidence,
    *,
    params: Sequence[str] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    min_trials: int = 6,
) -> list[Effect]:
    """The effect of each of ``params`` (default: every varied parameter) on the objective.

    Returns effects largest first (by the size of the change); a parameter
    with fewer than ``min_trials`` trials (or fewer than its columns + 3) gets
    none.

    Example:
        >>> import optuna, random
        >>> rng = random.Random(0)
        >>> dist = {"x": optuna.distributions.FloatDistribution(0, 1),
        ...         "w": optuna.distributions.FloatDistribution(0, 1)}
        >>> trials = []
        >>> for _ in range(30):
        ...     p = {"x": rng.random(), "w": rng.random()}
        ...     trials.append(optuna.trial.create_trial(
        ...         params=p, distributions=dist, value=0.5 - 0.3 * p["x"] + rng.gauss(0, 0.02)))
        >>> ev = Evidence("acc", "maximize", 5, tuple(trials), 0, 30, 5)
        >>> found = effects(ev)
        >>> found[0].sentence("acc").split(" (")[0]
        'lower `x` is better: -0.291 acc from 0 to 1'
        >>> found[1].param, found[1].determined
        ('w', False)
    """
    trials = evidence.trials
    present: dict[str, BaseDistribution] = {}
    for t in trials:
        for name, dist in t.distributions.items():
            present.setdefault(name, dist)
    names = [
        n
        for n in (params if params is not None else sorted(present))
        if n in present and len({repr(t.params.get(n)) for t in trials if n in t.params}) > 1
    ]
    common = [n for n in names if all(n in t.params for t in trials)]
    groups = [(common, list(trials))] + [
        ([n], [t for t in trials if n in t.params]) for n in names if n not in common
    ]
    rng = np.random.default_rng(seed)
    found: list[Effect] = []
    for group, members in groups:
        cols: list[tuple[str, object, object]] = []
        design: list[list] = []
        for n in group:
            for low, high, col in _columns(present[n], [t.params[n] for t in members]):
                cols.append((n, low, high))
                design.append(col)
        if not cols or len(members) < max(min_trials, len(cols) + 3):
            continue
        y = np.array([t.value for t in members], dtype=float)
        fitted = _fit(cols, np.array(design).T, y, n_boot=n_boot, rng=rng)
        found += [
            Effect(name, low, high, size, ci, len(members), evidence.direction)
            for name, low, high, size, ci in fitted
        ]
    return sorted(found, key=lambda e: -abs(e.size))
