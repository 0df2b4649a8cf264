"""Every Optuna pruner through the Tune scheduler decides exactly as plain Optuna does.

The same curves (with ties and a NaN) arrive in the same order at (a) the
project's OptunaSearcher + OptunaPruningScheduler over a SQLite study, driven
with real Tune ``Trial`` objects, and (b) a plain Optuna study using ask /
report / should_prune / tell. Orders: one trial after another, round-robin over
3 concurrent trials, and a seeded random interleaving (asynchronous arrival).
"""

from __future__ import annotations

import math
import random

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from search.pruning import OptunaPruningScheduler
from search.sampler import OptunaSearcher, StudyBridge
from spaces.study import build_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)
NAN = float("nan")
CURVES = [
    [0.10, 0.20, 0.30, 0.40, 0.50, 0.60],
    [0.20, 0.30, 0.40, 0.50, 0.60, 0.70],
    [0.10, 0.10, 0.10, 0.10, 0.10, 0.10],
    [0.20, 0.30, 0.40, 0.50, 0.60, 0.70],  # a tie with trial 1
    [0.05, 0.10, NAN, 0.20, 0.25, 0.30],  # a NaN mid-curve
    [0.30, 0.35, 0.40, 0.45, 0.50, 0.55],
    [0.12, 0.08, 0.04, 0.02, 0.01, 0.00],  # getting worse (patience)
    [0.25, 0.30, 0.35, 0.40, 0.45, 0.50],
    [0.20, 0.30, 0.40, 0.50, 0.60, 0.70],  # another tie
    [0.15, 0.15, 0.40, 0.60, 0.65, 0.90],
]

PRUNERS = {
    "median": {"n_startup_trials": 2, "n_warmup_steps": 1},
    "percentile": {"percentile": 40.0, "n_startup_trials": 2},
    "successive_halving": {"min_resource": 1, "reduction_factor": 2},
    "hyperband": {"min_resource": 1, "max_resource": 6, "reduction_factor": 2},
    "wilcoxon": {"p_threshold": 0.3, "n_startup_steps": 1},
    "threshold": {"lower": 0.12, "n_warmup_steps": 1},
    "patient": {"patience": 1, "wrapped": {"name": "median", "n_startup_trials": 2}},
    "none": {},
}


def run(order: str, start, report, finish, concurrency: int) -> list[tuple]:
    """Drive trials through ``start/report/finish`` in an arrival order; log the decisions."""
    rng = random.Random(7)
    pending = list(range(len(CURVES)))
    running: list[int] = []
    steps = dict.fromkeys(range(len(CURVES)), 0)
    log = []
    limit = 1 if order == "sequential" else concurrency
    turn = 0
    while pending or running:
        while pending and len(running) < limit:
            i = pending.pop(0)
            start(i)
            running.append(i)
        if order == "random":
            i = rng.choice(running)
        else:
            i = running[turn % len(running)]
            turn += 1
        steps[i] += 1
        step = steps[i]
        value = CURVES[i][step - 1]
        pruned = report(i, value, step)
        log.append((i, step, pruned))
        if pruned or step == len(CURVES[i]):
            finish(i, pruned, value)
            running.remove(i)
    return log


def through_tune(
    pruner: str, order: str, tmp_path, *, multi: bool = False, max_t: int | None = None
) -> tuple[list, list]:
    """Drive the project's searcher + scheduler; ``multi`` adds a second objective (cost)."""
    bridge = StudyBridge(
        storage=f"sqlite:///{tmp_path / f'{pruner}-{order}-{multi}.db'}",
        study_name="conformance",
        sampler_factory=lambda: optuna.samplers.RandomSampler(seed=0),
        pruner_factory=lambda: build_pruner(pruner, PRUNERS[pruner]),
        directions=["maximize", "minimize"] if multi else ["maximize"],
    )
    metrics, modes = (["score", "cost"], ["max", "min"]) if multi else (["score"], ["max"])
    searcher = OptunaSearcher(bridge, lambda trial: {}, metrics=metrics, modes=modes)
    scheduler = OptunaPruningScheduler(bridge, metric="score", max_t=max_t)
    trials: dict[int, Trial] = {}

    def start(i):
        trials[i] = Trial("conformance", stub=True)
        searcher.suggest(trials[i].trial_id)

    def report(i, value, step):
        result = {"score": value, "cost": float(step), "training_iteration": step}
        return scheduler.on_trial_result(None, trials[i], result) == TrialScheduler.STOP

    def finish(i, pruned, value):
        searcher.on_trial_complete(trials[i].trial_id, result={"score": value, "cost": 6.0})

    log = run(order, start, report, finish, concurrency=3)
    return log, (bridge.pruning_study if multi else bridge.study).trials


def plain_optuna(pruner: str, order: str, *, name: str = "conformance") -> tuple[list, list]:
    study = optuna.create_study(
        study_name=name,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=build_pruner(pruner, PRUNERS[pruner]),
    )
    trials: dict[int, optuna.Trial] = {}

    def start(i):
        trials[i] = study.ask()

    def report(i, value, step):
        trials[i].report(value, step)
        return trials[i].should_prune()

    def finish(i, pruned, value):
        if pruned:
            study.tell(trials[i], state=TrialState.PRUNED)
        elif math.isnan(value):
            study.tell(trials[i], state=TrialState.FAIL)
        else:
            study.tell(trials[i], value)

    log = run(order, start, report, finish, concurrency=3)
    return log, study.trials


@pytest.mark.parametrize("order", ["sequential", "round_robin", "random"])
@pytest.mark.parametrize("pruner", sorted(PRUNERS))
def test_decisions_equal_plain_optuna(pruner, order, tmp_path):
    ours, our_trials = through_tune(pruner, order, tmp_path)
    reference, ref_trials = plain_optuna(pruner, order)
    assert ours == reference
    summary = [(t.state, t.last_step) for t in our_trials]
    assert summary == [(t.state, t.last_step) for t in ref_trials]
    for a, b in zip(our_trials, ref_trials, strict=True):
        assert (
            (a.value == b.value)
            or (a.value is None and b.value is None)
            or (
                a.value is not None
                and b.value is not None
                and math.isnan(a.value)
                and math.isnan(b.value)
            )
        )


def test_the_fixture_exercises_pruning():
    pruned = {
        p: sum(1 for *_, d in plain_optuna(p, "round_robin")[0] if d) for p in sorted(PRUNERS)
    }
    assert pruned["none"] == 0
    assert all(pruned[p] > 0 for p in PRUNERS if p != "none"), pruned


@pytest.mark.parametrize("order", ["round_robin", "random"])
@pytest.mark.parametrize("pruner", ["median", "successive_halving", "patient"])
def test_multi_objective_studies_prune_on_the_primary_objective(pruner, order, tmp_path):
    """The README's rule: a multi-objective study is pruned by its pruner on the
    primary objective alone, exactly as a single-objective study of it would be."""
    ours, twin_trials = through_tune(pruner, order, tmp_path, multi=True)
    reference, ref_trials = plain_optuna(pruner, order)
    assert ours == reference
    assert [(t.state, t.last_step) for t in twin_trials] == [
        (t.state, t.last_step) for t in ref_trials
    ]
    study = optuna.load_study(
        study_name="conformance", storage=f"sqlite:///{tmp_path / f'{pruner}-{order}-True.db'}"
    )
    assert [t.state for t in study.trials] == [t.state for t in ref_trials]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done and all(len(t.values) == 2 and t.values[1] == 6.0 for t in done)


@pytest.mark.parametrize("order", ["round_robin", "random"])
def test_multi_objective_hyperband_decides_as_a_study_named_like_its_twin(order, tmp_path):
    """The README's qualification: Hyperband's brackets hash the study's name, so the
    twin decides as a single-objective study named ``<name>.primary`` would."""
    ours, _ = through_tune("hyperband", order, tmp_path, multi=True)
    assert ours == plain_optuna("hyperband", order, name="conformance.primary")[0]


@pytest.mark.parametrize("pruner", ["median", "wilcoxon"])
def test_a_trial_that_reaches_its_last_epoch_completes_and_earlier_decisions_are_optunas(
    pruner, tmp_path
):
    """With the budget's epochs known, the last epoch is never a prune: the trial ran it all."""
    epochs = len(CURVES[0])
    log, trials = through_tune(pruner, "round_robin", tmp_path, max_t=epochs)
    plain_log, plain_trials = plain_optuna(pruner, "round_robin")
    ours = {(i, step): pruned for i, step, pruned in log}
    theirs = {(i, step): pruned for i, step, pruned in plain_log}
    last = [i for (i, step), pruned in theirs.items() if step == epochs and pruned]
    assert last, "the curves must make plain Optuna prune at the end"
    for (i, step), pruned in theirs.items():
        assert ours[(i, step)] == (pruned and step < epochs)
    for i in last:  # plain Optuna: PRUNED after its whole budget; here: COMPLETE, its value
        assert plain_trials[i].state == TrialState.PRUNED
        assert trials[i].state == TrialState.COMPLETE and trials[i].value == CURVES[i][-1]
