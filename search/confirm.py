"""``sslsearch confirm``: re-train the search's answer at full length, with seeds.

:func:`run_confirm` chooses the configurations (:func:`analysis.confirm.choose`:
the ``top`` best at the short budget and ``controls`` spread over the rest),
writes the plan (``confirm.json``), and trains each with ``seeds`` seeds at
``epochs`` epochs, never pruned, as one Tune experiment per session
(``confirm``, ``confirm.1`` ... beside the search's ``tune``). Each long run
is recorded in the ``<study>.confirm`` study as it ends (its configuration,
seed, plan and every metric of its last epoch), then the tables
(``confirm.parquet``, ``ablation.md/.tex/.csv``) and the report are rewritten.

Resume: running ``confirm`` again on the same run directory (with no options,
or the same ones) runs only what is missing. A long run that finished but was
not recorded (a kill between the two) is recorded from its Tune log; one cut
short continues from its last checkpoint, never from scratch. Ctrl-C stops
the session after the running trials checkpoint; the finished long runs stay.

The long budget may also change the data (``--set data.options.count=8000``):
the overrides are validated as ``run`` validates a space, before anything
runs, and are part of the plan's identity (:attr:`ConfirmPlan.tag`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from analysis.confirm import (
    Candidate,
    ConfirmPlan,
    choose,
    load_plan,
)
from analysis.results import result_rows
from analysis.rundir import CONFIRM_DIR, Attr, RunDir, write_text_atomic
from search.dataset import absolute_path_sets
from search.errors import RunInterrupted
from search.noise import SideRecorder
from spaces import SearchSpec, load_spec
from spaces.compile import config_seed, own_config
from trainables.errors import InputError

__all__ = ["DEFAULTS", "confirm_pending", "confirm_trial", "run_confirm"]

logger = logging.getLogger(__name__)

#: confirm's defaults: 3 best + 3 controls, 3 seeds each, at twice the search's epochs.
DEFAULTS = {"top": 3, "controls": 3, "seeds": 3, "epochs_factor": 2}

_CASE = "confirm_case"  # the Tune config key holding one long run's case


def _write_plan(run: RunDir, plan: ConfirmPlan) -> None:
    write_text_atomic(run.confirm_plan_path, plan.to_json())


def _long_spec(run: RunDir, plan: ConfirmPlan) -> SearchSpec:
    """The run's spec at the long budget, with the plan's overrides (validated here); its
    schedules span the long budget (a search's ``train.horizon`` described the search's
    trials; a long run is the whole run) unless an override says otherwise."""
    overrides = {**dict(plan.sets), "budget.epochs": plan.epochs}
    overrides.setdefault("train.horizon", plan.epochs)
    return load_spec(run.spec_path, overrides=overrides, builtin_trainable=True)


def _plan(
    run: RunDir,
    spec: SearchSpec,
    *,
    top: int | None,
    controls: int | None,
    epochs: int | None,
    seeds: int | None,
    sets: Mapping[str, Any] | None,
) -> ConfirmPlan:
    """The plan of this session: the saved one, with any option given replacing its value."""
    saved = load_plan(run)
    given = {"top": top, "controls": controls, "epochs": epochs, "seeds": seeds}
    for name, value in given.items():
        if value is not None and value < (1 if name != "controls" else 0):
            raise InputError(
                f"confirm --{name} {value}: must be >= {1 if name != 'controls' else 0}"
            )
    base = {
        "top": DEFAULTS["top"],
        "controls": DEFAULTS["controls"],
        "seeds": DEFAULTS["seeds"],
        "epochs": DEFAULTS["epochs_factor"] * spec.budget.epochs,
    }
    if saved is not None:
        base = {k: getattr(saved, k) for k in base}
    chosen = {k: (given[k] if given[k] is not None else base[k]) for k in base}
    chosen_sets = (  # a relative data path as it is found now: the plan is read again later
        tuple(sorted(absolute_path_sets(sets).items())) if sets else (saved.sets if saved else ())
    )
    study = run.open_study()
    direction = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    candidates = choose(
        study.get_trials(deepcopy=False),
        maximize=direction,
        top=chosen["top"],
        controls=chosen["controls"],
    )
    if len(candidates) < 2:
        raise InputError(
            f"{run.path}: confirm needs at least 2 completed configurations "
            f"to compare; the search has {len(candidates)}"
        )
    experiments = saved.experiments if saved else ()
    return ConfirmPlan(
        **chosen, sets=chosen_sets, candidates=tuple(candidates), experiments=experiments
    )


def _case_config(spec: SearchSpec, candidate: Candidate, seed: int | None) -> dict[str, Any]:
    """A long run's config: the candidate's, with ``seed`` (None: its own) and the long
    spec's ``train.horizon`` (:func:`_long_spec`; over a searched one)."""
    config = copy.deepcopy(own_config(spec, candidate.params))
    train = config.setdefault("train", {})
    horizon = spec.base.get("train", {}).get("horizon")
    if horizon is not None:
        train["horizon"] = horizon
    if seed is not None:
        train["seed"] = seed
    return config


def _cases(spec: SearchSpec, plan: ConfirmPlan) -> list[tuple[Candidate, int]]:
    """Each candidate with each of its seeds: its own ``train.seed`` (a fixed
    ``train/seed`` parameter's included), + 1, ..."""
    first = {c.key: config_seed(_case_config(spec, c, None)) for c in plan.candidates}
    return [(c, first[c.key] + k) for c in plan.candidates for k in range(plan.seeds)]


def _recorded(study: optuna.Study, plan: ConfirmPlan) -> set[tuple[str, int]]:
    """The plan's long runs that ended (completed, or failed: a failure is a result)."""
    done = set()
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        if t.user_attrs.get(Attr.CONFIRM_PLAN) == plan.tag:
            done.add((t.user_attrs.get(Attr.CONFIG_KEY), int(t.user_attrs.get(Attr.SEED, -1))))
    return done


def _metrics_of(row: Mapping[str, Any]) -> dict[str, float]:
    from analysis.tables import metric_items

    return dict(metric_items(row))


def _record(
    study: optuna.Study,
    plan: ConfirmPlan,
    candidate: Candidate,
    seed: int,
    *,
    metric: str,
    metrics: Mapping[str, float] | None = None,
    reason: str | None = None,
) -> None:
    attrs: dict[str, Any] = {
        Attr.CONFIG_KEY: candidate.key,
        Attr.SEED: seed,
        Attr.CONFIRM_PLAN: plan.tag,
        Attr.METRICS: dict(metrics or {}),
    }
    value = (metrics or {}).get(metric)
    ok = reason is None and value is not None and math.isfinite(value)
    if not ok:
        attrs[Attr.FAIL_REASON] = (reason or f"no finite {metric} at the last epoch")[:2000]
    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.COMPLETE if ok else TrialState.FAIL,
            value=value if ok else None,
            user_attrs=attrs,
        )
    )


def _salvage(
    run: RunDir, plan: ConfirmPlan, pending: list[tuple[Candidate, int]]
) -> tuple[list[tuple[Candidate, int, dict[str, float]]], dict[tuple[str, int], tuple[str, int]]]:
    """What earlier confirm sessions left of the pending long runs: those that reached
    the last epoch (to record) and the newest checkpoint of each that did not."""
    from search.recover import checkpoint_epoch

    wanted = {(c.key, s): c for c, s in pending}
    finished: dict[tuple[str, int], dict[str, float]] = {}
    checkpoints: dict[tuple[str, int], tuple[str, int]] = {}
    for location in run.confirm_result_files():
        rows = result_rows(location)
        case = ((rows[0].get("config") or {}).get(_CASE) or {}) if rows else {}
        key = (case.get("key"), case.get("seed"))
        if key not in wanted or case.get("tag") != plan.tag:
            continue
        last = rows[-1]
        if int(last.get("epoch", 0)) >= plan.epochs:
            finished[key] = _metrics_of(last)
            continue
        found = checkpoint_epoch(location.rsplit("/", 1)[0], rows)
        if found is not None and found[1] > checkpoints.get(key, ("", 0))[1]:
            checkpoints[key] = found
    done = [(wanted[k], k[1], m) for k, m in finished.items()]
    return done, {k: v for k, v in checkpoints.items() if k not in finished}


def _without_epochs(config: Mapping[str, Any]) -> dict[str, Any]:
    """A trial config as it trains, but for how long: (its length aside) a run continued
    from another's checkpoint is that run."""
    from search.recover import RESUME_KEY

    out = {k: v for k, v in config.items() if k != RESUME_KEY}
    out["train"] = {k: v for k, v in dict(out.get("train", {})).items() if k != "epochs"}
    return out


def _from_search(
    run: RunDir, long: SearchSpec, pending: list[tuple[Candidate, int]], skip: set
) -> dict[tuple[str, int], tuple[str, int]]:
    """The long runs a search trial already began: one that ran the candidate's config
    with the same seed and the same schedules (``train.horizon`` = the long budget,
    nothing overridden) is the long run's first epochs, so the long run continues from
    that trial's newest checkpoint. ``(key, seed) -> (checkpoint, epoch)``."""
    from search.recover import checkpoint_epoch, trial_dir

    trials = {t.number: t for t in run.open_study().get_trials(deepcopy=False)}
    out: dict[tuple[str, int], tuple[str, int, int]] = {}
    ranks = {c.key: c.rank for c, _ in pending}
    for candidate, seed in pending:
        if (candidate.key, seed) in skip:
            continue
        wanted = _without_epochs(_case_config(long, candidate, seed))
        for number in candidate.trials:
            location = trial_dir(run, trials[number]) if number in trials else None
            rows = result_rows(f"{location}/result.json") if location else []
            if not rows or _without_epochs(rows[0].get("config") or {}) != wanted:
                continue
            found = checkpoint_epoch(location, rows)
            if found is None or found[1] >= long.budget.epochs:
                continue
            if found[1] > out.get((candidate.key, seed), ("", 0, 0))[1]:
                out[(candidate.key, seed)] = (*found, number)
    for (key, seed), (_, epoch, number) in out.items():
        logger.info(
            "confirm: rank-%d seed %d continues search trial %d from epoch %d (the same "
            "configuration, seed and schedules)",
            ranks[key],
            seed,
            number,
            epoch,
        )
    return {case: (path, epoch) for case, (path, epoch, _) in out.items()}


def confirm_pending(run: RunDir, plan: ConfirmPlan) -> list[tuple[Candidate, int]]:
    """The plan's long runs not yet recorded."""
    spec = run.spec()
    study = run.side_study("confirm", direction=spec.study.objectives[0].direction)
    recorded = _recorded(study, plan)
    return [(c, s) for c, s in _cases(spec, plan) if (c.key, s) not in recorded]


class _Recorder(SideRecorder):
    """Records each long run in ``<study>.confirm`` as it ends; logs the progress."""

    kind = "confirm"

    def __init__(self, run: RunDir, plan: ConfirmPlan, metric: str, direction: str, total: int):
        super().__init__(run, direction)
        self.plan, self.metric, self.total, self.done = plan, metric, total, 0
        self.last: dict[str, dict[str, Any]] = {}
        self.by_key = {c.key: c for c in plan.candidates}

    def _case(self, trial: Any) -> tuple[Candidate, int]:
        case = trial.config[_CASE]
        return self.by_key[case["key"]], int(case["seed"])

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        candidate, seed = self._case(trial)
        logger.info(
            "confirm: started rank-%d configuration (%s), seed %d, %d epochs",
            candidate.rank,
            candidate.role,
            seed,
            self.plan.epochs,
        )

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **_: Any):
        self.last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        last = self.last.get(trial.trial_id) or {}
        if int(last.get("epoch", 0)) < self.plan.epochs:
            return  # stopped before its last epoch: the next session continues it
        candidate, seed = self._case(trial)
        metrics = _metrics_of(last)
        _record(self.study, self.plan, candidate, seed, metric=self.metric, metrics=metrics)
        self.done += 1
        logger.info(
            "confirm: [%d/%d] rank-%d configuration, seed %d: %s %.4g (short run %.4g)",
            self.done,
            self.total,
            candidate.rank,
            seed,
            self.metric,
            metrics.get(self.metric, math.nan),
            candidate.short,
        )

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **_: Any) -> None:
        from search.pruning import error_reason

        candidate, seed = self._case(trial)
        reason = error_reason(trial)
        _record(self.study, self.plan, candidate, seed, metric=self.metric, reason=reason)
        self.done += 1
        logger.warning(
            "confirm: rank-%d configuration, seed %d failed: %s", candidate.rank, seed, reason
        )


def _recorder(*args: Any) -> Any:
    from ray import tune

    class Recorder(_Recorder, tune.Callback):
        pass

    return Recorder(*args)


def confirm_trial(config: dict[str, Any], dataset: Any = None) -> None:
    """The Tune trainable of a long run: the built-in trial on the case's config."""
    from search.recover import resumable
    from trainables.trainable import train_trial

    resumable(train_trial)(config[_CASE]["config"], dataset=dataset)


def _fit(
    run: RunDir,
    plan: ConfirmPlan,
    long: SearchSpec,
    cases: list[dict[str, Any]],
    dataset: Any,
    experiment: str,
    *,
    address: str | None,
    num_cpus: int | None,
) -> None:
    """One Tune experiment over the pending ``cases`` (a grid: one trial each)."""
    from ray import tune

    from search.tuner import _trial_name, check_resources, init_ray, run_config, run_experiment

    objective = long.study.objectives[0]
    init_ray(address, num_cpus=num_cpus)
    check_resources(long)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(confirm_trial, dataset=dataset),
            {"cpu": long.budget.cpu, "gpu": long.budget.gpu},
        ),
        param_space={_CASE: tune.grid_search(cases)},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=long.budget.concurrency,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
        ),
        run_config=run_config(
            run,
            experiment,
            [_recorder(run, plan, objective.metric, objective.direction, len(cases))],
            max_failures=long.budget.max_failures,
        ),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_experiment(tuner)


def _confirmable(run: RunDir) -> SearchSpec:
    """The search's spec, if confirm can re-train its configurations; else InputError."""
    run.require_run()
    run.require_writable("confirm")
    if not run.info().builtin_trainable:
        raise InputError(
            f"{run.path}: confirm re-trains with the built-in trainable; "
            "this run used its own (its epochs and seeds are not sslsearch's to set)"
        )
    spec = run.spec()
    if spec.study.scheduler is not None and spec.study.scheduler.name == "pbt":
        raise InputError(
            f"{run.path}: confirm re-trains fixed configurations; under PBT a trial's "
            "configuration changed as it ran"
        )
    return spec


def run_confirm(
    run_dir: str | Path,
    *,
    top: int | None = None,
    controls: int | None = None,
    epochs: int | None = None,
    seeds: int | None = None,
    sets: Mapping[str, Any] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
) -> ConfirmPlan:
    """Run (or continue) the confirm study of a finished search.

    Args:
        run_dir: the search's run directory.
        top, controls, epochs, seeds: the plan (:data:`DEFAULTS`; a saved plan's
            values when continuing).
        sets: overrides of the long runs' spec (``{"data.options.count": 8000}``).
        address, num_cpus: as for :func:`search.run.run_search`.

    Returns:
        The plan, once every long run is recorded.

    Raises:
        InputError: not a run directory, a custom trainable, or too few configurations.
        SpecError: an override makes the spec invalid.
        RunInterrupted: stopped (Ctrl-C) before every long run was recorded.

    Example:
        >>> run_confirm("runs/demo", top=2, controls=2, epochs=60)  # doctest: +SKIP
    """
    from analysis.report import write_report
    from search.dataset import builtin_dataset

    run = RunDir(Path(run_dir).resolve())
    spec = _confirmable(run)
    plan = _plan(run, spec, top=top, controls=controls, epochs=epochs, seeds=seeds, sets=sets)
    long = _long_spec(run, plan)
    metric, direction = spec.study.objectives[0].metric, spec.study.objectives[0].direction
    study = run.side_study("confirm", direction=direction)
    pending = [(c, s) for c, s in _cases(long, plan) if (c.key, s) not in _recorded(study, plan)]
    finished, checkpoints = _salvage(run, plan, pending)
    for candidate, seed, metrics in finished:
        _record(study, plan, candidate, seed, metric=metric, metrics=metrics)
        pending.remove((candidate, seed))
        logger.info("confirm: recorded rank-%d seed %d from its log", candidate.rank, seed)
    checkpoints.update(_from_search(run, long, pending, set(checkpoints)))
    logger.info(
        "confirm: %d configuration(s) x %d seed(s) at %d epochs; %d long run(s) to go%s",
        len(plan.candidates),
        plan.seeds,
        plan.epochs,
        len(pending),
        f" ({len(checkpoints)} from a checkpoint)" if checkpoints else "",
    )
    if pending:
        from search.recover import RESUME_KEY

        _base, dataset = builtin_dataset(long)
        experiment = (
            CONFIRM_DIR if not plan.experiments else f"{CONFIRM_DIR}.{len(plan.experiments)}"
        )
        plan = dataclasses.replace(plan, experiments=(*plan.experiments, experiment))
        _write_plan(run, plan)
        cases = []
        for candidate, seed in pending:
            config = _case_config(long, candidate, seed)
            found = checkpoints.get((candidate.key, seed))
            if found is not None:
                config[RESUME_KEY] = {"path": found[0], "step": found[1]}
            cases.append({"key": candidate.key, "seed": seed, "tag": plan.tag, "config": config})
        _fit(run, plan, long, cases, dataset, experiment, address=address, num_cpus=num_cpus)
    else:
        _write_plan(run, plan)
    try:
        logger.info("report: %s", write_report(run.path))
    except Exception as err:  # the long runs stand without the report
        logger.error("the report could not be written (%s: %s)", type(err).__name__, err)
    left = confirm_pending(run, plan)
    if left:
        raise RunInterrupted(
            f"confirm stopped with {len(left)} long run(s) to go; "
            f"continue it with: sslsearch confirm {run.path}"
        )
    return plan
