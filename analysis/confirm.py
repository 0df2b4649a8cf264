"""Does the short-run answer hold? The confirm study: its plan, its runs, the judgement.

``sslsearch confirm RUN_DIR`` (:mod:`search.confirm`) re-trains the search's
``top`` best configurations and ``controls`` more spread over the rest of the
ranking, at a long budget, with ``seeds`` seeds each, never pruned. The plan
(which configurations, with their short-run rank and value; the long budget;
the ``--set`` overrides) is ``confirm.json``; each long run is a trial of the
``<study>.confirm`` study in the run's storage (the search's study keeps only
the search's trials), tagged with its configuration, seed and plan.

This module chooses the configurations (:func:`choose`), keeps the plan
(:class:`ConfirmPlan`, :func:`load_plan`) and reads the long runs back
(:func:`long_runs`); :mod:`analysis.holds` judges them.

A *configuration* is a trial's sampled parameters without ``repeat`` (the
grid sampler's seed index): trials that differ only in it are one
configuration, scored by their mean.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from analysis.rundir import Attr, RunDir, side_study_name
from trainables.errors import InputError

__all__ = [
    "Candidate",
    "ConfirmPlan",
    "LongRun",
    "choose",
    "config_key",
    "confirm_study_name",
    "load_plan",
    "long_runs",
]


def confirm_study_name(study_name: str) -> str:
    """The long runs' study beside the search's.

    Example:
        >>> confirm_study_name("default")
        'default.confirm'
    """
    return side_study_name(study_name, "confirm")


def config_key(params: Mapping[str, Any]) -> str:
    """One configuration's identity: its parameters, sorted, without ``repeat``.

    Example:
        >>> config_key({"b": 2, "a": 0.5, "repeat": 1})
        '{"a": 0.5, "b": 2}'
    """
    kept = {k: params[k] for k in sorted(params) if k != "repeat"}
    return json.dumps(kept, sort_keys=True, default=str)


@dataclass(frozen=True)
class Candidate:
    """A configuration chosen for the long runs.

    Attributes:
        key: :func:`config_key` of its parameters.
        params: its parameters (a search trial's, ``repeat`` removed).
        trials: the search trials that ran it (completed ones).
        short: its short-run objective (the mean over those trials).
        rank: its place in the short-run ranking of configurations (1: the best).
        role: ``top`` (one of the best) or ``control`` (spread over the rest).
    """

    key: str
    params: dict[str, Any]
    trials: tuple[int, ...]
    short: float
    rank: int
    role: str


def choose(
    trials: Sequence[FrozenTrial], *, maximize: bool, top: int, controls: int
) -> list[Candidate]:
    """The ``top`` best configurations of the completed ``trials`` and ``controls`` more,
    evenly spaced over the rest of the ranking down to the worst (so that the rank
    agreement rests on the whole range, not only the winners).

    Example:
        >>> from optuna.trial import create_trial
        >>> from optuna.distributions import FloatDistribution
        >>> d = {"x": FloatDistribution(0, 1)}
        >>> ts = [create_trial(value=v / 10, params={"x": v / 10}, distributions=d)
        ...       for v in range(10)]
        >>> [(c.rank, c.role, c.short) for c in choose(ts, maximize=True, top=2, controls=2)]
        [(1, 'top', 0.9), (2, 'top', 0.8), (6, 'control', 0.4), (10, 'control', 0.0)]
    """
    groups: dict[str, list[FrozenTrial]] = {}
    for t in trials:
        if t.state == TrialState.COMPLETE and t.values and math.isfinite(t.values[0]):
            groups.setdefault(config_key(t.params), []).append(t)
    sign = -1.0 if maximize else 1.0
    scored = sorted(
        ((float(np.mean([t.values[0] for t in ts])), key, ts) for key, ts in groups.items()),
        key=lambda s: (sign * s[0], min(t.number for t in s[2])),
    )
    first = min(top, len(scored))
    picked = list(range(first))
    rest = len(scored) - first
    for i in range(1, controls + 1):
        index = first + max(0, math.ceil(i * rest / controls) - 1)
        if rest and index not in picked:
            picked.append(index)
    out = []
    for index in picked:
        short, key, ts = scored[index]
        params = {k: v for k, v in ts[0].params.items() if k != "repeat"}
        out.append(
            Candidate(
                key=key,
                params=params,
                trials=tuple(sorted(t.number for t in ts)),
                short=short,
                rank=index + 1,
                role="top" if index < top else "control",
            )
        )
    return out


@dataclass(frozen=True)
class ConfirmPlan:
    """``confirm.json``: what the long runs are.

    Attributes:
        top, controls: how many of the best, and how many controls, were chosen.
        epochs: the long budget.
        seeds: runs per configuration (``train.seed`` = the search's seed + 0 .. seeds - 1).
        sets: the ``--set`` overrides of the long runs (data size, image size ...).
        candidates: the chosen configurations.
        experiments: the Tune experiments of the confirm sessions (``confirm``, ``confirm.1``).
    """

    top: int
    controls: int
    epochs: int
    seeds: int
    sets: tuple[tuple[str, Any], ...] = ()
    candidates: tuple[Candidate, ...] = ()
    experiments: tuple[str, ...] = field(default=())

    @property
    def tag(self) -> str:
        """What makes two long runs comparable: the budget and the overrides.

        Example:
            >>> ConfirmPlan(top=3, controls=2, epochs=60, seeds=3).tag
            'e60'
        """
        if not self.sets:
            return f"e{self.epochs}"
        digest = hashlib.sha1(json.dumps(self.sets, default=str).encode()).hexdigest()[:8]
        return f"e{self.epochs}-{digest}"

    def to_json(self) -> str:
        data = asdict(self)
        data["sets"] = [list(s) for s in self.sets]
        return json.dumps(data, indent=2, default=str)

    @classmethod
    def from_json(cls, text: str) -> ConfirmPlan:
        data = json.loads(text)
        return cls(
            top=int(data["top"]),
            controls=int(data["controls"]),
            epochs=int(data["epochs"]),
            seeds=int(data["seeds"]),
            sets=tuple((str(k), v) for k, v in data.get("sets", ())),
            candidates=tuple(
                Candidate(**{**c, "trials": tuple(c["trials"])}) for c in data["candidates"]
            ),
            experiments=tuple(data.get("experiments", ())),
        )


def load_plan(run: RunDir) -> ConfirmPlan | None:
    """The run's confirm plan (None: ``confirm`` never ran here)."""
    try:
        text = run.confirm_plan_path.read_text(encoding="utf-8")
    except OSError:
        return None
    try:
        return ConfirmPlan.from_json(text)
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{run.confirm_plan_path}: not a confirm plan ({err})") from None


@dataclass(frozen=True)
class LongRun:
    """One long run, read back from the ``<study>.confirm`` study.

    Attributes:
        key: its configuration.
        seed: its ``train.seed``.
        state: ``COMPLETE`` or ``FAIL``.
        metrics: every metric of its last epoch (empty when it failed).
        reason: why it failed.
    """

    key: str
    seed: int
    state: str
    metrics: dict[str, float]
    reason: str | None = None


def long_runs(study: optuna.Study, plan: ConfirmPlan) -> list[LongRun]:
    """The plan's long runs (other plans' runs in the same study are left out)."""
    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        attrs = t.user_attrs
        if attrs.get(Attr.CONFIRM_PLAN) != plan.tag:
            continue
        out.append(
            LongRun(
                key=str(attrs.get(Attr.CONFIG_KEY)),
                seed=int(attrs.get(Attr.SEED, 0)),
                state=t.state.name,
                metrics={k: float(v) for k, v in (attrs.get(Attr.METRICS) or {}).items()},
                reason=attrs.get(Attr.FAIL_REASON),
            )
        )
    return out
