"""Does the short-run answer hold? The long runs of ``sslsearch confirm``, judged.

:func:`judge` compares the short-run ranking of the confirmed configurations
(:mod:`analysis.confirm`) with their long runs: the rank agreement (Spearman
and Kendall, with bootstrap intervals that resample the configurations and,
within each, its seeds), the regret of the short-run choice (the long-run best
minus the short-run winner's long-run score), whether the two are tied
(Welch's t-test over their seeds), and how each label-free score, as the
search measured it, would have chosen (:class:`Proxy`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr, ttest_ind

from analysis.confirm import Candidate, ConfirmPlan, LongRun
from analysis.curves import mean_interval

__all__ = ["ConfigResult", "Confirmation", "Proxy", "holds_sentences", "judge"]

#: Bootstrap replicates behind each interval (seeded: the report is reproducible).
BOOTSTRAP = 2000


@dataclass(frozen=True)
class ConfigResult:
    """One configuration at the short and the long budget.

    Attributes:
        candidate: what was chosen, with its short-run rank and value.
        values: the long-run objective of each seed that completed.
        mean, low, high: their mean and its 95 % t-interval.
        metrics: every long-run metric -> its values over the seeds.
        failed: long runs that failed.
    """

    candidate: Candidate
    values: tuple[float, ...]
    mean: float
    low: float
    high: float
    metrics: dict[str, tuple[float, ...]]
    failed: int = 0


@dataclass(frozen=True)
class Proxy:
    """How a label-free score, as the search measured it, would have chosen.

    Attributes:
        metric: the label-free metric; direction: the direction it is better in.
        n: configurations it rests on.
        spearman: its short-run value against the long-run labelled score, oriented
            (+1: it prefers what the long runs prefer).
        picked: the configuration it would have chosen (its short-run best).
        lost: long-run labelled score of the long-run best minus its pick's (>= 0).
        vs_labelled: its pick's long-run labelled score minus that of the labelled
            short-run winner's (> 0: it chose better than the labels did).
    """

    metric: str
    direction: str
    n: int
    spearman: float
    picked: str
    lost: float
    vs_labelled: float


@dataclass(frozen=True)
class Confirmation:
    """The judgement of the long runs (see the module docstring).

    Attributes:
        metric, direction: the objective judged (the search's primary one).
        configs: the configurations with long runs, in short-run order.
        spearman, kendall: short vs long rank agreement over ``configs``, with
            bootstrap 95 % intervals (``*_ci``); nan with fewer than 3.
        regret: long-run best mean minus the short-run winner's long-run mean,
            in the objective's better direction (>= 0).
        tied: whether the short-run winner and the long-run best differ by less
            than their seeds can tell apart (Welch's t-test, 5 %); None with
            fewer than two seeds on either, and True when they are one configuration.
        labelled: the labelled long-run metric the proxies are judged against.
        proxies: one per label-free score the search recorded.
        plan: the plan judged (its budget, seeds and overrides).
    """

    metric: str
    direction: str
    configs: tuple[ConfigResult, ...]
    spearman: float
    spearman_ci: tuple[float, float]
    kendall: float
    kendall_ci: tuple[float, float]
    regret: float
    tied: bool | None
    labelled: str | None = None
    proxies: tuple[Proxy, ...] = ()
    plan: ConfirmPlan | None = None

    @property
    def winner(self) -> ConfigResult:
        """The short-run winner (the best-ranked configuration with long runs)."""
        return self.configs[0]

    @property
    def long_best(self) -> ConfigResult:
        sign = 1.0 if self.direction == "maximize" else -1.0
        return max(self.configs, key=lambda c: sign * c.mean)

    @property
    def tied_with_best(self) -> tuple[ConfigResult, ...] | None:
        """The other configurations that the long-run best's seeds cannot tell from it
        (Welch, 5 %), in short-run order; None when any has fewer than two seeds."""
        best = self.long_best
        others = [c for c in self.configs if c is not best]
        verdicts = [_tied(c, best) for c in others]
        if None in verdicts:
            return None
        return tuple(c for c, tied in zip(others, verdicts, strict=True) if tied)


def holds_sentences(c: Confirmation, *, points: bool = False) -> list[str]:
    """The answer to "does it hold?" in words; ``points``: show differences x 100 too
    (for an accuracy in [0, 1]).

    Example:
        >>> cand = [Candidate(str(i), {}, (i,), s, i + 1, "top") for i, s in enumerate((0.9, 0.8))]
        >>> configs = tuple(ConfigResult(k, (v,), v, v, v, {}) for k, v in zip(cand, (0.7, 0.75)))
        >>> c = Confirmation("acc", "maximize", configs, math.nan, (math.nan,) * 2,
        ...                  math.nan, (math.nan,) * 2, 0.05, None)
        >>> holds_sentences(c, points=True)[1:]  # doctest: +NORMALIZE_WHITESPACE
        ['The short-run winner (short rank 1) reaches acc 0.7 at full length; the long-run
          best is short rank 2 at 0.75: regret 0.05 (5.0 points).',
         'Too few seeds to tell whether they differ beyond noise.']
    """

    def diff(x: float) -> str:
        return f"{x:.3g}" + (f" ({100 * x:.1f} points)" if points else "")

    n = len(c.configs)
    if math.isnan(c.spearman):
        out = [f"{n} configuration(s) with long runs: too few (or too uniform) for a ranking."]
    else:
        out = [
            f"Short- vs long-run ranking over {n} configurations: Spearman {c.spearman:.2f} "
            f"(95 % CI {c.spearman_ci[0]:.2f} .. {c.spearman_ci[1]:.2f}), Kendall "
            f"{c.kendall:.2f} ({c.kendall_ci[0]:.2f} .. {c.kendall_ci[1]:.2f})."
        ]
    w, b = c.winner, c.long_best
    if w is b:
        out.append(
            f"The short-run winner (short rank {w.candidate.rank}) is also the long-run best: "
            f"{c.metric} {w.mean:.4g} at full length; regret 0."
        )
    else:
        out.append(
            f"The short-run winner (short rank {w.candidate.rank}) reaches {c.metric} "
            f"{w.mean:.4g} at full length; the long-run best is short rank {b.candidate.rank} "
            f"at {b.mean:.4g}: regret {diff(c.regret)}."
        )
        out.append(
            "Too few seeds to tell whether they differ beyond noise."
            if c.tied is None
            else "They are tied: the difference is within what the seeds vary (Welch, 5 %)."
            if c.tied
            else "The long-run best is better beyond the seeds' noise (Welch, 5 %)."
        )
    ties = c.tied_with_best
    if ties and not math.isnan(c.spearman):
        ranks = ("short ranks " if len(ties) > 1 else "short rank ") + ", ".join(
            str(t.candidate.rank) for t in ties
        )
        out.append(
            f"At full length {len(ties)} other configuration(s) of {n} ({ranks}) "
            f"are tied with the long-run best (Welch, 5 %): the order among these "
            f"{len(ties) + 1} is the seeds', and so is that part of the rank agreement."
        )
    return out


def _orient(direction: str) -> float:
    return 1.0 if direction == "maximize" else -1.0


def _results(plan: ConfirmPlan, runs: Sequence[LongRun], metric: str) -> list[ConfigResult]:
    out = []
    for c in sorted(plan.candidates, key=lambda c: c.rank):
        mine = [r for r in runs if r.key == c.key]
        done = sorted((r for r in mine if r.state == "COMPLETE"), key=lambda r: r.seed)
        values = tuple(
            r.metrics[metric] for r in done if math.isfinite(r.metrics.get(metric, math.nan))
        )
        if not values:
            continue
        names = sorted({m for r in done for m in r.metrics})
        metrics = {m: tuple(r.metrics[m] for r in done if m in r.metrics) for m in names}
        mean, low, high = mean_interval(values)
        out.append(
            ConfigResult(c, values, mean, low, high, metrics, sum(r.state == "FAIL" for r in mine))
        )
    return out


def _correlations(
    configs: Sequence[ConfigResult], rng: np.random.Generator
) -> tuple[float, tuple[float, float], float, tuple[float, float]]:
    """Spearman and Kendall of short vs long, each with a bootstrap interval that
    resamples the configurations and, within each, its seeds."""
    nan = (math.nan, (math.nan, math.nan))
    if len(configs) < 3:
        return (*nan, *nan)
    short = np.array([c.candidate.short for c in configs])
    long = np.array([c.mean for c in configs])
    rho, tau = spearmanr(short, long).statistic, kendalltau(short, long).statistic
    rhos, taus = [], []
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, len(configs), len(configs))
        s = short[pick]
        lv = np.array([rng.choice(configs[i].values, len(configs[i].values)).mean() for i in pick])
        if np.ptp(s) == 0 or np.ptp(lv) == 0:
            continue
        rhos.append(spearmanr(s, lv).statistic)
        taus.append(kendalltau(s, lv).statistic)

    def ci(xs: list[float]) -> tuple[float, float]:
        if not xs:
            return (math.nan, math.nan)
        lo, hi = np.percentile(xs, [2.5, 97.5])
        return (float(lo), float(hi))

    return float(rho), ci(rhos), float(tau), ci(taus)


def _tied(a: ConfigResult, b: ConfigResult) -> bool | None:
    if a.candidate.key == b.candidate.key:
        return True
    if len(a.values) < 2 or len(b.values) < 2:
        return None
    if np.ptp(a.values) == 0 and np.ptp(b.values) == 0:
        return a.mean == b.mean
    with warnings.catch_warnings():  # a constant sample: scipy warns, the test still holds
        warnings.simplefilter("ignore", RuntimeWarning)
        return bool(ttest_ind(a.values, b.values, equal_var=False).pvalue >= 0.05)


def _proxies(
    configs: Sequence[ConfigResult],
    labelled: str,
    label_free: Mapping[str, str],
    short_metrics: Mapping[int, Mapping[str, float]],
    labelled_direction: str,
) -> list[Proxy]:
    def long_of(c: ConfigResult) -> float:
        values = c.metrics.get(labelled, ())
        return float(np.mean(values)) if values else math.nan

    usable = [c for c in configs if math.isfinite(long_of(c))]
    if len(usable) < 2:
        return []
    sign = _orient(labelled_direction)
    best = max(sign * long_of(c) for c in usable)
    labelled_pick = usable[0]  # the short-run winner among those with labelled long runs
    out = []
    for metric, direction in label_free.items():
        scored = []
        for c in usable:
            values = [short_metrics.get(n, {}).get(metric, math.nan) for n in c.candidate.trials]
            values = [v for v in values if math.isfinite(v)]
            if values:
                scored.append((float(np.mean(values)), c))
        if len(scored) < 2 or np.ptp([s for s, _ in scored]) == 0:
            continue  # a score that does not vary chooses nothing
        o = _orient(direction)
        rho = math.nan
        if len(scored) >= 3:
            rho = float(
                spearmanr(
                    [o * s for s, _ in scored], [sign * long_of(c) for _, c in scored]
                ).statistic
            )
        picked = max(scored, key=lambda s: (o * s[0], -s[1].candidate.rank))[1]
        out.append(
            Proxy(
                metric=metric,
                direction=direction,
                n=len(scored),
                spearman=rho,
                picked=picked.candidate.key,
                lost=best - sign * long_of(picked),
                vs_labelled=sign * (long_of(picked) - long_of(labelled_pick)),
            )
        )
    return out


def judge(
    plan: ConfirmPlan,
    runs: Sequence[LongRun],
    *,
    metric: str,
    direction: str,
    metrics: Mapping[str, Mapping[str, Any]],
    short_metrics: Mapping[int, Mapping[str, float]] | None = None,
    seed: int = 0,
) -> Confirmation | None:
    """Judge the long runs of ``plan`` on the objective ``metric``.

    Args:
        metrics: the run's metric records (:meth:`analysis.rundir.RunDir.metrics`):
            which are labelled, which label-free, and their directions.
        short_metrics: search trial number -> its final metrics (``trials.parquet``'s
            ``final/<metric>``), for the proxies.
        seed: of the bootstrap.

    Returns:
        None while no configuration has a completed long run.
    """
    configs = _results(plan, runs, metric)
    if not configs:
        return None
    rho, rho_ci, tau, tau_ci = _correlations(configs, np.random.default_rng(seed))
    sign = _orient(direction)
    best = max(configs, key=lambda c: sign * c.mean)
    info = metrics.get(metric) or {}
    labelled = metric if info.get("labels") else None
    if labelled is None:  # a label-free objective: judge proxies against a labelled probe run
        recorded = {m for c in configs for m in c.metrics}
        labelled = next(
            (
                m
                for m, i in metrics.items()
                if i.get("labels") and i.get("headline") and m in recorded
            ),
            None,
        )
    proxies: list[Proxy] = []
    if labelled is not None:
        label_free = {
            m: i["direction"]
            for m, i in metrics.items()
            if not i.get("labels") and i.get("direction")
        }
        labelled_direction = direction if labelled == metric else metrics[labelled]["direction"]
        proxies = _proxies(configs, labelled, label_free, short_metrics or {}, labelled_direction)
    return Confirmation(
        metric=metric,
        direction=direction,
        configs=tuple(configs),
        spearman=rho,
        spearman_ci=rho_ci,
        kendall=tau,
        kendall_ci=tau_ci,
        regret=sign * (best.mean - configs[0].mean),
        tied=_tied(configs[0], best),
        labelled=labelled,
        proxies=tuple(proxies),
        plan=plan,
    )
