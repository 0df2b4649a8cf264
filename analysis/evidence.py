"""The evidence an answer rests on: every trial's objective at one epoch, pruned ones included.

Importance and effects computed on completed trials alone see only the trials
the pruner let through, which is where the sampler already went: a setting
that was always pruned (e.g. strong colour jitter that loses early) all but
vanishes from them, and the analysis can then name the opposite of what the
search found. :func:`gather` instead reads every trial's objective at one
epoch, the **evidence epoch**: the latest epoch at which at least
``coverage`` of the trials that reported (and at least ``min_trials``) had
reported it. When every trial ran to the end, that is the last epoch and the
evidence is the completed trials' final values; under pruning it is the
epoch where the pruner started to stop trials, or just before it.

Failed trials are left out (their values may be a divergence's). What the
evidence holds is said in :meth:`Evidence.describe`, and the report quotes it
beside every figure that rests on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["Evidence", "gather"]

#: Share of the trials that must have reported at the evidence epoch.
COVERAGE = 2 / 3


@dataclass(frozen=True)
class Evidence:
    """Each trial's parameters and its objective at :attr:`epoch`.

    Attributes:
        metric: the objective.
        direction: ``maximize`` or ``minimize``.
        epoch: the evidence epoch (None: no trial reported the objective).
        trials: one per trial that reported at ``epoch``: its parameters and
            distributions, its value there (a COMPLETE trial of an in-memory study).
        pruned: how many of them the pruner stopped (at or after ``epoch``).
        reported: trials (complete or pruned) that reported the objective at all.
        last_epoch: the latest epoch any trial reported.
    """

    metric: str
    direction: str
    epoch: int | None
    trials: tuple[FrozenTrial, ...]
    pruned: int
    reported: int
    last_epoch: int | None

    @property
    def n(self) -> int:
        return len(self.trials)

    def describe(self) -> str:
        """What the figures rest on, in words (quoted by the report)."""
        if self.epoch is None:
            return "no trial reported the objective"
        where = "their last epoch" if self.epoch == self.last_epoch else f"epoch {self.epoch}"
        text = f"{self.n} of {self.reported} trials, {self.metric} at {where}"
        if self.pruned:
            text += f" ({self.pruned} of them pruned at or after it)"
        return text

    def study(self) -> optuna.Study:
        """An in-memory study holding the evidence, for Optuna's importance evaluators."""
        study = optuna.create_study(direction=self.direction)
        study.add_trials(self.trials)
        return study

    def values(self) -> list[float]:
        return [t.value for t in self.trials]  # type: ignore[misc]


def gather(
    trials: Sequence[FrozenTrial],
    curve_rows: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    direction: str,
    coverage: float = COVERAGE,
    min_trials: int = 4,
) -> Evidence:
    """Every trial's ``metric`` at the evidence epoch (see the module's docstring).

    Args:
        trials: the study's trials (parameters and states).
        curve_rows: ``curves.parquet`` rows (``trial``, ``epoch``, metrics).
        metric, direction: the objective.
        coverage: share of the reporting trials that must have reached the epoch.
        min_trials: and at least this many.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(direction="maximize")
        >>> for x in (0.1, 0.5, 0.9):
        ...     study.enqueue_trial({"x": x})
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        >>> trials = study.trials
        >>> rows = [{"trial": t.number, "epoch": e, "acc": e * t.params["x"]}
        ...         for t in trials for e in (1, 2, 3) if e < 3 or t.params["x"] > 0.2]
        >>> ev = gather(trials, rows, metric="acc", direction="maximize", min_trials=2)
        >>> ev.epoch, ev.n, ev.describe()
        (3, 2, '2 of 3 trials, acc at their last epoch')
    """
    kept = {t.number: t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    at: dict[int, dict[int, float]] = {}  # epoch -> trial -> value
    for row in curve_rows:
        value = row.get(metric)
        if row.get("trial") not in kept or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            at.setdefault(int(row["epoch"]), {})[int(row["trial"])] = float(value)
    reporting = {n for values in at.values() for n in values}
    last = max(at, default=None)
    need = max(min_trials, math.ceil(coverage * len(reporting)))
    epoch = max((e for e, values in at.items() if len(values) >= need), default=None)
    if epoch is None:  # too few trials for the rule: the epoch most trials reached
        epoch = max(at, key=lambda e: (len(at[e]), e), default=None)
    snapshot: list[FrozenTrial] = []
    pruned = 0
    for number, value in sorted(at.get(epoch, {}).items()) if epoch is not None else []:
        t = kept[number]
        pruned += t.state == TrialState.PRUNED
        snapshot.append(
            optuna.trial.create_trial(
                params=t.params,
                distributions=t.distributions,
                value=value,
                user_attrs={"number": number},
            )
        )
    return Evidence(metric, direction, epoch, tuple(snapshot), pruned, len(reporting), last)
