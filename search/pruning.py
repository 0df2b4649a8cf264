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
import warnings
from collections.abc import Mapping
from typing import Any

import optuna
from ray.tune.experiment import Trial
from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    PopulationBasedTraining,
    TrialScheduler,
)

from analysis.rundir import Attr
from search.sampler import StudyBridge
from spaces.checks import pbt_mutated
from spaces.compile import get_path, nest, set_path
from spaces.model import SearchSpec

__all__ = [
    "ASHAScheduler",
    "OptunaPruningScheduler",
    "PBTScheduler",
    "error_reason",
    "pbt_mutations",
]


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
        main.set_user_attr(Attr.PRUNED_AT, step)


def _report(bridge: StudyBridge, trial: Trial, value: float, iteration: int) -> tuple[int, Any]:
    """Report ``value`` at the trial's epoch to the trial that pruning judges.

    The epoch is Tune's iteration plus any epochs inherited from a checkpoint.
    A trial restarted from a checkpoint (a retry, a PBT clone) reports some
    epochs again; Optuna keeps the first value of a step, silently here.

    Returns:
        ``(epoch, the Optuna trial reported to)``; the trial is None once finished.
    """
    step = bridge.step(trial.trial_id, iteration)
    ot = bridge.pruning_trial(trial.trial_id)
    if ot is not None:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The reported value is ignored")
            ot.report(value, step)
    return step, ot


class _StudyHooks:
    """What every scheduler of a run does beside its own decisions.

    Tune's metric/mode come from the spec (never refused), and a trial's error
    is kept for the searcher, which hears of it after the scheduler.
    """

    bridge: StudyBridge

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.bridge.errors[trial.trial_id] = error_reason(trial)
        super().on_trial_error(tune_controller, trial)  # type: ignore[misc]


class OptunaPruningScheduler(_StudyHooks, FIFOScheduler):
    """Stop Tune trials that the study's Optuna pruner prunes.

    A trial that reports its last epoch (``max_t``) has run its whole budget:
    the pruner is not asked there, and the trial is COMPLETE with that value.
    (Plain Optuna would ask, and a trial "pruned" after its last epoch would
    save nothing and leave every analysis of the completed trials.) Before
    ``max_t`` every decision is the pruner's own, exactly as in plain Optuna.

    Args:
        bridge: the study shared with :class:`~search.sampler.OptunaSearcher`.
        metric: the reported metric the pruner judges (the primary objective).
        max_t: epochs per trial; None asks the pruner at every epoch.
    """

    def __init__(self, bridge: StudyBridge, *, metric: str, max_t: int | None = None) -> None:
        super().__init__()
        self.bridge = bridge
        self._metric = metric
        self.max_t = max_t
        # ``pruner: none``: the answer is known, so Optuna is not asked (a read per epoch)
        self._never_prunes = isinstance(bridge.pruner_factory(), optuna.pruners.NopPruner)

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
        step, ot = _report(self.bridge, trial, value, int(step))
        if ot is None or (self.max_t is not None and step >= self.max_t) or self._never_prunes:
            return TrialScheduler.CONTINUE
        if ot.should_prune():
            _record_pruned(self.bridge, trial, step)
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE


class ASHAScheduler(_StudyHooks, AsyncHyperBandScheduler):
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

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value, step = result.get(self._metric), result.get("training_iteration")
        if step is not None:  # a trial re-run from a checkpoint counts on from its epochs
            if value is not None:
                _report(self.bridge, trial, float(value), int(step))
            step = self.bridge.step(trial.trial_id, int(step))
            result = {**result, "training_iteration": step}
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and step is not None and step < self.max_t:
            _record_pruned(self.bridge, trial, int(step))
        return decision


def pbt_mutations(spec: SearchSpec) -> dict[str, Any]:
    """PBT's ``hyperparam_mutations`` (nested like the trial config) from the space's params.

    A float becomes ``tune.uniform`` / ``tune.loguniform`` (``quniform`` with a step),
    an int ``tune.randint`` / ``qrandint``, a categorical its list of choices.
    """
    from ray import tune

    params = {p.name: p for p in spec.params}
    return nest({name: params[name].pbt_domain(tune) for name in pbt_mutated(spec)})


def _flat(config: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    return {name: get_path(config, name) for name in names}


class PBTScheduler(_StudyHooks, PopulationBasedTraining):
    """Tune's Population Based Training on the study's trials (a PBA-style schedule search).

    Every ``perturbation_interval`` epochs a trial in the bottom quantile clones
    the checkpoint of one in the top quantile and continues with perturbed
    values of the mutated parameters (augmentation strengths by default). Each
    result is reported to the study as an intermediate value; each exploit is
    appended to the trial's ``pbt_schedule`` user attribute (epoch, the trial it
    cloned, the parameter values from then on), so the study holds the schedule
    each trial followed. Its Optuna params are the values it started with.

    Args:
        bridge: the run's study.
        spec: the search spec (its ``study.scheduler`` options and parameters).
        metric, mode: the primary objective.
    """

    def __init__(self, bridge: StudyBridge, spec: SearchSpec, *, metric: str, mode: str) -> None:
        options = dict(spec.study.scheduler.options)
        super().__init__(
            time_attr="training_iteration",
            metric=metric,
            mode=mode,
            perturbation_interval=options.get("perturbation_interval", 1),
            burn_in_period=options.get("burn_in_period", 0),
            hyperparam_mutations=pbt_mutations(spec),
            quantile_fraction=options.get("quantile_fraction", 0.25),
            resample_probability=options.get("resample_probability", 0.25),
            custom_explore_fn=self._within_bounds,
            log_config=False,
        )
        self.bridge = bridge
        self.max_t = spec.budget.epochs
        self.mutated = pbt_mutated(spec)
        self.bounds = {p.name: p for p in spec.params if p.is_range}
        self.seed = options.get("seed", spec.study.sampler.options.get("seed"))

    def _within_bounds(self, config: dict[str, Any]) -> dict[str, Any]:
        """PBT's * 1.2 / * 0.8 may leave the declared range: clip (and round to the step)."""
        for name in self.mutated:
            param = self.bounds.get(name)
            if param is None:
                continue
            value = min(max(get_path(config, name), param.low), param.high)
            if param.step:
                value = param.low + round((value - param.low) / param.step) * param.step
                value = min(value, param.high)
            set_path(config, name, param.coerce(value))
        return config

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        # Tune's PBT refuses every search algorithm because its mutations happen
        # behind the searcher's back. Here the searcher is the study bridge and
        # every mutation is written to the study (`pbt_schedule`), so the
        # initial configurations may come from Optuna.
        from ray.tune.schedulers.pbt import _PBTTrialState

        self._trial_state[trial] = _PBTTrialState(trial)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        value, step = result.get(self._metric), result.get("training_iteration")
        if value is not None and step is not None:
            _report(self.bridge, trial, float(value), int(step))
        if step is not None and self.bridge.step(trial.trial_id, int(step)) >= self.max_t:
            # the trial's last epoch: exploiting now would only restart a finished trial
            return TrialScheduler.CONTINUE
        return super().on_trial_result(tune_controller, trial, result)

    def _exploit(self, tune_controller: Any, trial: Trial, trial_to_clone: Trial) -> None:
        step = self._trial_state[trial].last_train_time
        super()._exploit(tune_controller, trial, trial_to_clone)
        main = self.bridge.trial(trial.trial_id)
        if main is None:
            return
        schedule = list(main.user_attrs.get(Attr.PBT_SCHEDULE, []))
        schedule.append(
            {
                "epoch": int(step),
                "cloned": self.bridge.numbers.get(trial_to_clone.trial_id),
                "params": _flat(trial.config, self.mutated),
            }
        )
        main.set_user_attr(Attr.PBT_SCHEDULE, schedule)
