"""A Tune scheduler that asks an Optuna pruner after every reported epoch.

Each result's objective value is ``trial.report(value, step)`` on the run's
Optuna study (step = Tune's ``training_iteration``, plus the epochs a trial
re-run after an interruption inherited from its checkpoint); when the study's pruner
says so, the scheduler returns STOP and the bridge records the trial
PRUNED (with its last value) when Tune completes it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler

from search.sampler import StudyBridge

__all__ = ["ASHAScheduler", "OptunaPruningScheduler", "error_reason"]


def error_reason(trial: Trial) -> str:
    """``"ExceptionType: message"`` of the error a Tune trial failed with."""
    try:
        err = trial.get_pickled_error()
    except Exception:  # unreadable pickle: fall back to the text file
        err = None
    cause = getattr(err, "cause", None) or err
    if cause is not None:
        return f"{type(cause).__name__}: {cause}".strip()
    if trial.error_file:
        try:
            with open(trial.error_file, encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.strip()]
            if lines:  # a traceback's last line: "package.module.SomeError: message"
                return re.sub(r"^(?:\w+\.)+(\w+: )", r"\1", lines[-1])
        except OSError:
            pass
    return "the trial raised an error"


def _record_pruned(bridge: StudyBridge, trial: Trial, step: int) -> None:
    """Remember that a scheduler stopped ``trial`` early, at ``step``."""
    bridge.pruned[trial.trial_id] = step
    main = bridge.trial(trial.trial_id)
    if main is not None:
        main.set_user_attr("pruned_at", step)


class OptunaPruningScheduler(FIFOScheduler):
    """Stop Tune trials that the study's Optuna pruner prunes.

    Args:
        bridge: the study shared with :class:`~search.sampler.OptunaSearcher`.
        metric: the reported metric the pruner judges (the primary objective).
    """

    def __init__(self, bridge: StudyBridge, *, metric: str) -> None:
        super().__init__()
        self.bridge = bridge
        self._metric = metric

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        # Called before the searcher hears of the error: keep the reason for it.
        self.bridge.errors[trial.trial_id] = error_reason(trial)
        super().on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value = result.get(self._metric)
        step = result.get("training_iteration")
        if value is None or step is None:
            return TrialScheduler.CONTINUE  # e.g. an epoch without a probe
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        # NaN is reported as Optuna would get it: its pruners prune NaN curves.
        # multi-objective studies report the primary objective to a single-objective twin
        ot = self.bridge.pruning_trial(trial.trial_id)
        if ot is None:
            return TrialScheduler.CONTINUE
        step = self.bridge.step(trial.trial_id, int(step))
        ot.report(value, step)
        if ot.should_prune():
            _record_pruned(self.bridge, trial, step)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class ASHAScheduler(AsyncHyperBandScheduler):
    """Tune's ASHA, with its early stops recorded PRUNED in the Optuna study.

    Each result is also reported to the study as an intermediate value, so the
    study holds the same curves as with an Optuna pruner.

    Args:
        bridge: the run's study.
        metric: the primary objective; ``mode`` ``max`` or ``min``.
        max_t: epochs per trial (a trial stopped before it was not finished).
        grace_period, reduction_factor: ASHA's.
    """

    def __init__(
        self,
        bridge: StudyBridge,
        *,
        metric: str,
        mode: str,
        max_t: int,
        grace_period: int = 1,
        reduction_factor: float = 3,
    ) -> None:
        super().__init__(
            time_attr="training_iteration",
            metric=metric,
            mode=mode,
            max_t=max_t,
            grace_period=grace_period,
            reduction_factor=reduction_factor,
        )
        self.bridge = bridge
        self.max_t = max_t

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.bridge.errors[trial.trial_id] = error_reason(trial)
        super().on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value, step = result.get(self._metric), result.get("training_iteration")
        if step is not None:  # a trial re-run from a checkpoint counts on from its epochs
            step = self.bridge.step(trial.trial_id, int(step))
            result = {**result, "training_iteration": step}
        ot = self.bridge.pruning_trial(trial.trial_id)
        if value is not None and step is not None and ot is not None:
            ot.report(float(value), step)
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and step is not None and step < self.max_t:
            _record_pruned(self.bridge, trial, int(step))
        return decision
