"""The noise floor: how much the objective moves when only the seed does.

At the end of a search the best configuration (the *incumbent*) is trained
again with ``budget.noise_seeds`` other seeds (``train.seed`` + 1, + 2, ...;
:mod:`search.noise` runs them). Its own value and the re-runs' are one
configuration's spread: their standard deviation ``sd`` is the noise floor,
and two runs of one configuration differ by more than
``1.96 * sqrt(2) * sd`` (:attr:`NoiseFloor.band`) only 5 % of the time (normal
noise). Trials within that band of the best are reported as tied with it, and
the warnings (a baseline close to the best, a saturated metric) are judged in
that unit.

The re-runs are kept in their own study, ``<study>.noise``, in the run's
storage, so the search's study (what the sampler and pruner saw, what the
budget counts) holds only the search's trials. Each re-run records the
incumbent's number and its seed (``Attr.NOISE_OF``, ``Attr.SEED``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from analysis.rundir import Attr, side_study_name

__all__ = [
    "NoiseFloor",
    "noise_floor",
    "noise_study_name",
]

#: Two runs of one configuration differ by less than BAND_SDS * sd 95 % of the time.
BAND_SDS = 1.96 * math.sqrt(2)


def noise_study_name(study_name: str) -> str:
    """The re-runs' study beside the search's.

    Example:
        >>> noise_study_name("augmentation_strength")
        'augmentation_strength.noise'
    """
    return side_study_name(study_name, "noise")


@dataclass(frozen=True)
class NoiseFloor:
    """One configuration's objective over seeds.

    Attributes:
        incumbent: the search trial re-run.
        values: the objective of each run: the incumbent's own first, then the re-runs'.
        seeds: ``train.seed`` of each re-run.
        failed: re-runs that failed (no value).
    """

    incumbent: int
    values: tuple[float, ...]
    seeds: tuple[int, ...] = ()
    failed: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def sd(self) -> float | None:
        """The sample standard deviation (None with fewer than 2 values)."""
        return statistics.stdev(self.values) if self.n >= 2 else None

    @property
    def band(self) -> float | None:
        """How far apart two runs of one configuration fall, at most, 95 % of the time.

        Example:
            >>> round(NoiseFloor(3, (0.90, 0.92, 0.91), (1, 2)).band, 4)
            0.0277
        """
        return None if self.sd is None else BAND_SDS * self.sd

    def describe(self, metric: str) -> str:
        """One sentence: what was re-run, the values and the band."""
        shown = ", ".join(f"{v:.4g}" for v in self.values)
        seeds = ", ".join(str(s) for s in self.seeds) or "-"
        failed = f"; {self.failed} re-run(s) failed" if self.failed else ""
        head = f"trial {self.incumbent} and its re-runs with seed(s) {seeds}: {metric} {shown}"
        if self.band is None:
            return f"{head}; too few values for a spread{failed}"
        return (
            f"{head} (sd {self.sd:.3g}: two runs of one configuration differ by up to "
            f"{self.band:.3g} at 95 %){failed}"
        )


def noise_floor(
    reruns: Sequence[FrozenTrial], values: Mapping[int, float], *, prefer: int | None = None
) -> NoiseFloor | None:
    """The noise floor from the ``<study>.noise`` trials.

    Args:
        reruns: the noise study's trials.
        values: each search trial's value by number (the incumbents' own runs).
        prefer: the trial whose re-runs to use when there are several (the best
            trial); otherwise the last one re-run.

    Returns:
        None when nothing was re-run (or the trial re-run has no value).

    Example:
        >>> from optuna.trial import create_trial
        >>> again = [create_trial(value=v, user_attrs={"noise_of": 4, "seed": s})
        ...          for v, s in ((0.92, 1), (0.91, 2))]
        >>> floor = noise_floor(again, {4: 0.9})
        >>> floor.values, round(floor.sd, 3)
        ((0.9, 0.92, 0.91), 0.01)
    """
    groups: dict[int, list[FrozenTrial]] = {}
    for t in reruns:
        of = t.user_attrs.get(Attr.NOISE_OF)
        if isinstance(of, int) and of in values:
            groups.setdefault(of, []).append(t)
    if not groups:
        return None
    number = prefer if prefer in groups else list(groups)[-1]
    mine = groups[number]
    done = sorted(
        (t for t in mine if t.state == TrialState.COMPLETE and t.value is not None),
        key=lambda t: t.user_attrs.get(Attr.SEED, 0),
    )
    return NoiseFloor(
        incumbent=number,
        values=(float(values[number]), *(float(t.value) for t in done)),
        seeds=tuple(int(t.user_attrs.get(Attr.SEED, 0)) for t in done),
        failed=sum(t.state == TrialState.FAIL for t in mine),
    )
