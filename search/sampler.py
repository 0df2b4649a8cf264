"""One persistent Optuna study behind Ray Tune: the sampler bridge.

:class:`StudyBridge` owns the study (in its storage) and the map from Tune
trial ids to Optuna trials; :class:`OptunaSearcher` asks the study for each
new Tune trial and tells it the outcome; the pruning scheduler
(:mod:`search.pruning`) reports intermediate values through the same bridge.

Unlike Ray's ``OptunaSearch``, a trial never stays RUNNING: a NaN/inf or
missing objective value, or a trial that raised, is told FAIL with the
reason stored as the ``fail_reason`` user attribute; and a configuration the
sampler proposes again (TPE does, on discrete spaces) can train with the next
``train.seed`` its earlier trials did not use (``reseed``), instead of
training the same model again.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import optuna
from optuna.trial import TrialState
from ray.tune.search import Searcher

from analysis.rundir import Attr, open_storage
from search.recover import RESUME_KEY
from spaces.compile import config_seed

__all__ = ["OptunaSearcher", "StudyBridge", "ask_with_attrs"]

logger = logging.getLogger(__name__)


def ask_with_attrs(study: optuna.Study, attrs: Mapping[str, Any]) -> optuna.Trial:
    """``study.ask()``, with user attributes written in the same transaction.

    What :meth:`optuna.Study.ask` does, step for step (the trial cache reset,
    an enqueued trial popped first), except that a new trial is created from
    a template carrying ``attrs``: one storage commit instead of one per
    attribute (two SQLite commits are ~8 ms of a trial's bridge time). An
    enqueued trial gets its attributes written after it is popped. Relies on
    three private members of Optuna's ``Study``, pinned in constraints.txt and
    checked by tests/test_sampler.py against ``study.ask()``.

    Example:
        >>> study = optuna.create_study()
        >>> trial = ask_with_attrs(study, {"tune_trial_id": "abc_00000"})
        >>> trial.number, trial.user_attrs
        (0, {'tune_trial_id': 'abc_00000'})
    """
    study._thread_local.cached_all_trials = None  # as ask(): sync storage once per trial
    trial_id = study._pop_waiting_trial_id()
    if trial_id is None:
        template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs=dict(attrs))
        trial_id = study._storage.create_new_trial(study._study_id, template_trial=template)
        return optuna.Trial(study, trial_id)
    trial = optuna.Trial(study, trial_id)
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    return trial


#: The user attribute of a fixed ``train/seed`` parameter.
_FIXED_SEED = f"{Attr.FIXED_PREFIX}train/seed"


def _params_key(params: Mapping[str, Any]) -> str:
    """One configuration's parameters as a key (the grid's ``repeat`` axis included)."""
    return json.dumps(dict(params), sort_keys=True, default=str)


class StudyBridge:
    """The run's Optuna study plus the Tune-trial -> Optuna-trial map (driver side).

    The study is opened lazily from its storage URL, so the bridge pickles
    (Tune saves its searcher and scheduler with the experiment) without the
    database connection.

    Args:
        storage: an Optuna storage URL (``sqlite:///RUN_DIR/study.db``) or ``journal:PATH``.
        study_name: the study's name in that storage.
        sampler_factory: builds the sampler (called once per process).
        pruner_factory: builds the pruner.
        directions: one direction per objective.
        experiment: the Tune experiment directory (under the run directory) of this
            session: ``tune``, then ``tune.1``, ``tune.2`` ... for each resume.
    """

    def __init__(
        self,
        *,
        storage: str,
        study_name: str,
        sampler_factory: Callable[[], optuna.samplers.BaseSampler],
        pruner_factory: Callable[[], optuna.pruners.BasePruner],
        directions: list[str],
        experiment: str = "tune",
    ) -> None:
        self.storage = storage
        self.study_name = study_name
        self.sampler_factory = sampler_factory
        self.pruner_factory = pruner_factory
        self.directions = list(directions)
        self.experiment = experiment
        self.numbers: dict[str, int] = {}  # Tune trial id -> Optuna trial number
        self.pruned: dict[str, int] = {}  # Tune trial id -> step it was pruned at
        self.errors: dict[str, str] = {}  # Tune trial id -> why it failed
        self.twin_numbers: dict[str, int] = {}  # Tune trial id -> pruning twin's number
        self.offsets: dict[str, int] = {}  # Tune trial id -> epochs inherited from a checkpoint
        self._study: optuna.Study | None = None
        self._pruning_study: optuna.Study | None = None
        self._trials: dict[str, optuna.Trial] = {}
        self._twins: dict[str, optuna.Trial] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_study=None, _pruning_study=None, _trials={}, _twins={})
        return state

    @property
    def multi_objective(self) -> bool:
        return len(self.directions) > 1

    @property
    def pruning_study(self) -> optuna.Study:
        """Where intermediate values are reported and pruning is decided.

        The study itself; for a multi-objective study (which Optuna cannot
        prune) a single-objective twin study named ``<name>.primary`` in the
        same storage, on the primary objective: its pruner prunes on the
        primary objective only.
        """
        if not self.multi_objective:
            return self.study
        if self._pruning_study is None:
            self._pruning_study = optuna.create_study(
                storage=open_storage(self.storage),
                study_name=f"{self.study_name}.primary",
                sampler=optuna.samplers.RandomSampler(seed=0),  # never samples: no params
                pruner=self.pruner_factory(),
                direction=self.directions[0],
                load_if_exists=True,
            )
        return self._pruning_study

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._study = optuna.create_study(
                storage=open_storage(self.storage),
                study_name=self.study_name,
                sampler=self.sampler_factory(),
                pruner=self.pruner_factory(),
                directions=self.directions,
                load_if_exists=True,
            )
        return self._study

    def ask(self, tune_trial_id: str) -> optuna.Trial:
        """A new (or enqueued) Optuna trial for a Tune trial.

        A trial re-enqueued by a resume inherits the intermediate values of
        the interrupted trial up to its checkpoint, and its Tune iterations
        count on from there (:attr:`offsets`).
        """
        trial = ask_with_attrs(
            self.study,
            {Attr.TUNE_TRIAL_ID: tune_trial_id, Attr.TUNE_EXPERIMENT: self.experiment},
        )
        self._trials[tune_trial_id] = trial
        self.numbers[tune_trial_id] = trial.number
        if self.multi_objective:
            twin = ask_with_attrs(self.pruning_study, {Attr.TRIAL_NUMBER: trial.number})
            self._twins[tune_trial_id] = twin
            self.twin_numbers[tune_trial_id] = twin.number
        attrs = trial.user_attrs
        step = int(attrs.get(Attr.RESUME_STEP, 0))
        if step:
            self.offsets[tune_trial_id] = step
            source = self.study.get_trials(deepcopy=False)[attrs[Attr.RESUMED_FROM]]
            target = self.pruning_trial(tune_trial_id)
            for s, value in sorted(source.intermediate_values.items()):
                if s <= step and target is not None:
                    target.report(value, s)
        return trial

    def step(self, tune_trial_id: str, iteration: int) -> int:
        """The trial's epoch of a Tune ``training_iteration`` (counting inherited epochs)."""
        return iteration + self.offsets.get(tune_trial_id, 0)

    @staticmethod
    def _live(
        study: optuna.Study, cache: dict[str, optuna.Trial], numbers: dict[str, int], key: str
    ) -> optuna.Trial | None:
        if key in cache:
            return cache[key]
        number = numbers.get(key)
        if number is None:
            return None
        trials = study.get_trials(deepcopy=False)
        frozen = trials[number] if number < len(trials) else None
        if frozen is None or frozen.state != TrialState.RUNNING:
            return None
        cache[key] = optuna.Trial(study, frozen._trial_id)
        return cache[key]

    def trial(self, tune_trial_id: str) -> optuna.Trial | None:
        """The live Optuna trial of a Tune trial (None if unknown or finished)."""
        return self._live(self.study, self._trials, self.numbers, tune_trial_id)

    def pruning_trial(self, tune_trial_id: str) -> optuna.Trial | None:
        """The trial intermediate values go to: the trial itself, or its primary twin."""
        if not self.multi_objective:
            return self.trial(tune_trial_id)
        return self._live(self.pruning_study, self._twins, self.twin_numbers, tune_trial_id)

    def finish(
        self,
        tune_trial_id: str,
        *,
        state: TrialState,
        values: list[float] | None = None,
        reason: str | None = None,
    ) -> None:
        """Tell the study how a trial ended; never raises for a trial already told."""
        if self.multi_objective:
            twin = self.pruning_trial(tune_trial_id)
            self._twins.pop(tune_trial_id, None)
            if twin is not None:
                try:
                    if state == TrialState.COMPLETE:
                        self.pruning_study.tell(twin, values[0])
                    else:
                        self.pruning_study.tell(twin, state=state)
                except (RuntimeError, ValueError) as err:
                    logger.warning("could not record pruning twin %s: %s", twin.number, err)
        trial = self.trial(tune_trial_id)
        self._trials.pop(tune_trial_id, None)
        if trial is None:
            return
        try:
            if reason:
                trial.set_user_attr(Attr.FAIL_REASON, reason[:2000])
            if state == TrialState.COMPLETE:
                self.study.tell(trial, values)
            else:
                self.study.tell(trial, state=state)
        except (RuntimeError, ValueError) as err:  # already finished elsewhere
            logger.warning("could not record trial %s: %s", trial.number, err)


class OptunaSearcher(Searcher):
    """A Tune searcher that samples every trial from one persistent Optuna study.

    Args:
        bridge: the shared study.
        space: define-by-run function ``optuna.Trial -> nested config``.
        metrics: objective metric names, in the study's order.
        modes: ``"max"``/``"min"`` per metric.
        reseed: a configuration sampled again (the same parameters as an earlier
            trial) runs with the lowest ``train.seed`` from its own upward that
            none of them used, recorded as the trial's ``seed`` user attribute; a
            re-run after an interruption keeps the seed it recorded (or its own,
            continuing a checkpoint; a trial killed between sampling and recording
            its seed never trained, and its re-run chooses again).
    """

    def __init__(
        self,
        bridge: StudyBridge,
        space: Callable[[optuna.trial.BaseTrial], dict[str, Any]],
        *,
        metrics: list[str],
        modes: list[str],
        reseed: bool = False,
    ) -> None:
        super().__init__(metric=metrics[0], mode=modes[0])
        self.bridge = bridge
        self.space = space
        self.metrics = list(metrics)
        self.reseed = reseed
        # parameters (JSON) -> the seeds their trials ran with (None: the parameters' own)
        self._seeds: dict[str, set[int | None]] | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_seeds": None}  # rebuilt from the study where unpickled

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        return True

    def save(self, checkpoint_path: str) -> None:
        """Tune checkpoints the searcher with the experiment: keep the trial map."""
        state = {
            "numbers": self.bridge.numbers,
            "pruned": self.bridge.pruned,
            "offsets": self.bridge.offsets,
        }
        with open(checkpoint_path, "w", encoding="utf-8") as f:
            json.dump(state, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, encoding="utf-8") as f:
            state = json.load(f)
        self.bridge.numbers.update(state.get("numbers", {}))
        self.bridge.pruned.update(state.get("pruned", {}))
        self.bridge.offsets.update(state.get("offsets", {}))

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        trial = self.bridge.ask(trial_id)
        try:
            config = self.space(trial)
        except Exception as err:
            self.bridge.finish(trial_id, state=TrialState.FAIL, reason=f"sampling failed: {err}")
            raise
        if self.reseed:
            self._choose_seed(trial, config)
        if trial_id in self.bridge.offsets:  # an interrupted trial, re-run from its checkpoint
            attrs = trial.user_attrs
            config[RESUME_KEY] = {
                "path": attrs[Attr.RESUME_CHECKPOINT],
                "step": self.bridge.offsets[trial_id],
            }
        return config

    def _seeds_by_params(self, asking: int) -> dict[str, set[int | None]]:
        """The seeds each configuration's trials ran with, read from the study once
        (without trial ``asking``, the one being sampled)."""
        if self._seeds is None:
            self._seeds = {}
            for t in self.bridge.study.get_trials(deepcopy=False):
                if t.number == asking or t.state == TrialState.WAITING:
                    continue
                seed = t.user_attrs.get(Attr.SEED)
                if t.user_attrs.get(Attr.INTERRUPTED) and seed is None:
                    continue  # its re-run chooses again (it may have died before recording one)
                if t.params:  # an interrupted trial's recorded seed stays its re-run's
                    self._seeds.setdefault(_params_key(t.params), set()).add(seed)
        return self._seeds

    def _choose_seed(self, trial: optuna.Trial, config: dict[str, Any]) -> None:
        """Run a configuration sampled again with a seed none of its trials used."""
        seen = self._seeds_by_params(trial.number).setdefault(_params_key(trial.params), set())
        own = config_seed(config)
        attrs = trial.user_attrs
        # a re-run after an interruption keeps the seed it recorded, and its own one when
        # it continues a checkpoint; from scratch with none recorded it chooses again
        if Attr.RESUMED_FROM in attrs and (Attr.SEED in attrs or attrs.get(Attr.RESUME_STEP)):
            seed = int(attrs.get(Attr.SEED, own))
        else:
            used = {own if s is None else s for s in seen}
            seed = own
            while seed in used:
                seed += 1
            if seed != own:
                logger.info(
                    "trial %d repeats the parameters of an earlier trial: train.seed %d",
                    trial.number,
                    seed,
                )
        if seed != own:
            trial.set_user_attr(Attr.SEED, seed)
            if _FIXED_SEED in attrs:  # a fixed train/seed records what the trial ran
                trial.set_user_attr(_FIXED_SEED, seed)
        seen.add(None if seed == own else seed)
        config.setdefault("train", {})["seed"] = seed

    def _missing(self, trial_id: str, metric: str, result: Mapping[str, Any]) -> str:
        """Why a finished trial has no value: never reported, or not in its last report."""
        epoch = result.get("training_iteration")
        number = self.bridge.numbers.get(trial_id)
        earlier: list[int] = []
        if number is not None and metric == self.metrics[0] and not self.bridge.multi_objective:
            earlier = sorted(self.bridge.study.trials[number].intermediate_values)
        if earlier:
            return (
                f"its last report (epoch {epoch}) lacks the objective metric '{metric}', "
                f"which it reported up to epoch {earlier[-1]}: a trial's value is its last "
                "report's, so report the objective in every report, or at least the last"
            )
        reported = sorted(k for k in result if not k.startswith(("config/", "_")))
        return (
            f"objective metric '{metric}' was not reported; "
            f"reported: {', '.join(reported) or 'nothing'}"
        )

    def on_trial_complete(
        self, trial_id: str, result: Mapping[str, Any] | None = None, error: bool = False
    ) -> None:
        if error:
            reason = self.bridge.errors.get(trial_id, "the trial raised an error")
            self.bridge.finish(trial_id, state=TrialState.FAIL, reason=reason)
            return
        if trial_id in self.bridge.pruned:
            self.bridge.finish(trial_id, state=TrialState.PRUNED)
            return
        result = result or {}
        values = []
        for metric in self.metrics:
            value = result.get(metric)
            if value is None:
                self.bridge.finish(
                    trial_id, state=TrialState.FAIL, reason=self._missing(trial_id, metric, result)
                )
                return
            try:
                value = float(value)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                self.bridge.finish(
                    trial_id,
                    state=TrialState.FAIL,
                    reason=f"objective metric '{metric}' is {result.get(metric)!r}",
                )
                return
            values.append(value)
        self.bridge.finish(trial_id, state=TrialState.COMPLETE, values=values)
