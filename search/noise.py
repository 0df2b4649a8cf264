"""Measure the noise floor: re-run the best configuration with other seeds.

After the search's budget is spent, the incumbent (the best completed trial
on the primary objective) is trained again at full length, never pruned,
with ``budget.noise_seeds`` other seeds (``train.seed`` + 1, + 2 ...), as one
Tune experiment (``noise.N`` beside the search's ``tune``, ``tune.1`` ...)
whose results go to the ``<study>.noise`` study (:mod:`analysis.noise` reads
them back). A seed already measured is never run again: a resume after a
crash runs only the missing ones, and a seed the search itself already ran
the incumbent's configuration with (a configuration sampled again,
``budget.repeated_config``, or the grid sampler's ``repeats``) is copied into
the noise study, not trained again. The built-in trainable only (a custom trainable may not honour
``train.seed``), and not under PBT (its trials change configuration as they
run: there is no one configuration to repeat).
"""

from __future__ import annotations

import copy
import itertools
import logging
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from analysis.confirm import config_key
from analysis.rundir import Attr, RunDir
from search.recover import best_complete
from spaces import SearchSpec
from spaces.compile import config_seed, own_config, ran_config

__all__ = ["SideRecorder", "measure_noise", "noise_pending"]

logger = logging.getLogger(__name__)


def incumbent_config(spec: SearchSpec, incumbent: FrozenTrial) -> dict[str, Any]:
    """The nested trial config the incumbent ran (its ``train.seed`` included)."""
    return ran_config(spec, incumbent)


def noise_pending(
    run: RunDir, spec: SearchSpec, *, builtin: bool
) -> tuple[FrozenTrial, list[int]] | None:
    """The incumbent and the seeds it still has to run with (None: nothing to run).

    The seeds are the first ``budget.noise_seeds`` from its configuration's own
    ``train.seed`` up, the one the incumbent ran with left out (its own + 1, + 2
    ...; a configuration the search sampled again ran with more than one); those
    the search already ran it with are first copied into the noise study
    (:func:`_adopt_repeats`)."""
    scheduler = spec.study.scheduler.name if spec.study.scheduler else None
    if not builtin or spec.budget.noise_seeds < 1 or scheduler == "pbt":
        return None
    study = run.open_study()
    incumbent = best_complete(study)
    if incumbent is None:
        return None
    noise = _noise_study(run, spec)
    seed = config_seed(incumbent_config(spec, incumbent))
    first = config_seed(own_config(spec, incumbent.params))
    others = (s for s in itertools.count(first) if s != seed)
    wanted = list(itertools.islice(others, spec.budget.noise_seeds))
    measured = {
        t.user_attrs.get(Attr.SEED)
        for t in noise.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL))
        if t.user_attrs.get(Attr.NOISE_OF) == incumbent.number
    }
    missing = [s for s in wanted if s not in measured]
    adopted = _adopt_repeats(study, noise, incumbent, spec, missing)
    pending = [s for s in missing if s not in adopted]
    return (incumbent, pending) if pending else None


def _adopt_repeats(
    study: optuna.Study,
    noise: optuna.Study,
    incumbent: FrozenTrial,
    spec: SearchSpec,
    missing: list[int],
) -> set[int]:
    """Copy the search's completed trials of the incumbent's configuration with a
    seed the noise study is ``missing`` into it; the seeds copied."""
    adopted: set[int] = set()
    key = config_key(incumbent.params)  # the grid's repeats of it are it too
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if t.number == incumbent.number or config_key(t.params) != key:
            continue
        seed = config_seed(ran_config(spec, t))
        if seed in missing and seed not in adopted:
            _record(noise, incumbent, seed, value=t.values[0], trial=t.number)
            adopted.add(seed)
            logger.info("noise floor: seed %d ran in the search as trial %d", seed, t.number)
    return adopted


def _noise_study(run: RunDir, spec: SearchSpec) -> optuna.Study:
    return run.side_study("noise", direction=spec.study.objectives[0].direction)


def _record(noise: optuna.Study, incumbent: FrozenTrial, seed: int, **outcome: Any) -> None:
    attrs = {Attr.NOISE_OF: incumbent.number, Attr.SEED: seed}
    if outcome.get("trial") is not None:  # run in the search, as this trial
        attrs[Attr.TRIAL_NUMBER] = outcome["trial"]
    if outcome.get("reason"):
        attrs[Attr.FAIL_REASON] = outcome["reason"][:2000]
    noise.add_trial(
        optuna.trial.create_trial(
            state=TrialState.COMPLETE if "value" in outcome else TrialState.FAIL,
            value=outcome.get("value"),
            params=incumbent.params,
            distributions=incumbent.distributions,
            user_attrs=attrs,
        )
    )


class SideRecorder:
    """The driver side of a Tune callback that records re-runs in the run's
    ``<study>.<kind>`` study as they end (so a crash loses none that finished).
    The study is opened on first use and not pickled with the callback."""

    kind = ""

    def __init__(self, run: RunDir, direction: str):
        self.run, self.direction = run, direction
        self._study: optuna.Study | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_study": None}

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = self.run.side_study(self.kind, direction=self.direction)
        return self._study


class _Recorder(SideRecorder):
    """Records each re-run of the incumbent in ``<study>.noise``. Built as a
    :class:`ray.tune.Callback` by :func:`_recorder` (Ray is imported only when the
    re-runs run)."""

    kind = "noise"

    def __init__(self, run: RunDir, spec: SearchSpec, incumbent: FrozenTrial, *, verbose: bool):
        super().__init__(run, spec.study.objectives[0].direction)
        self.spec, self.incumbent, self.verbose = spec, incumbent, verbose
        self.metric = spec.study.objectives[0].metric
        self.last: dict[str, float] = {}  # Tune trial id -> its latest value of the metric
        self.epoch: dict[str, int] = {}  # Tune trial id -> the last epoch it reported

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_: Any):
        value = result.get(self.metric)
        if isinstance(value, int | float):
            self.last[trial.trial_id] = float(value)
        self.epoch[trial.trial_id] = int(result.get("epoch", 0))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        seed = int(trial.config["train"]["seed"])
        value = self.last.get(trial.trial_id)
        if value is None or self.epoch.get(trial.trial_id, 0) < self.spec.budget.epochs:
            return  # stopped before its last epoch: a resume runs it again
        _record(self.study, self.incumbent, seed, value=value)
        if self.verbose:
            logger.info("noise floor: seed %d: %s %.4g", seed, self.metric, value)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        from search.pruning import error_reason

        seed = int(trial.config["train"]["seed"])
        reason = error_reason(trial)
        _record(self.study, self.incumbent, seed, reason=reason)
        logger.warning("noise floor: seed %d failed: %s", seed, reason)


def _recorder(run: RunDir, spec: SearchSpec, incumbent: FrozenTrial, *, verbose: bool) -> Any:
    from ray import tune

    class Recorder(_Recorder, tune.Callback):
        pass

    return Recorder(run, spec, incumbent, verbose=verbose)


def measure_noise(
    spec: SearchSpec,
    run: RunDir,
    dataset: Any,
    due: tuple[FrozenTrial, list[int]],
    *,
    verbose: bool,
) -> None:
    """Run the incumbent's missing seeds, ``due`` (:func:`noise_pending`); record each in
    the ``<study>.noise`` study as it ends. A re-run stopped early (Ctrl-C) is not
    recorded."""
    from ray import tune

    from search.tuner import _trainable, _trial_name, run_config, run_experiment

    incumbent, seeds = due
    logger.info(
        "noise floor: re-running trial %d (%s %.4g) with seed(s) %s",
        incumbent.number,
        spec.study.objectives[0].metric,
        incumbent.values[0],
        ", ".join(map(str, seeds)),
    )
    space = copy.deepcopy(incumbent_config(spec, incumbent))
    space.setdefault("train", {})["seed"] = tune.grid_search(seeds)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuner = tune.Tuner(
        tune.with_resources(
            _trainable(None, dataset), {"cpu": spec.budget.cpu, "gpu": spec.budget.gpu}
        ),
        param_space=space,
        tune_config=tune.TuneConfig(
            max_concurrent_trials=spec.budget.concurrency,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=run_config(
            run,
            f"noise.{len(_noise_study(run, spec).trials)}",
            [_recorder(run, spec, incumbent, verbose=verbose)],
            max_failures=spec.budget.max_failures,
        ),
    )
    run_experiment(tuner)
