"""The evidence epoch: every trial's value there, pruned ones included, failures left out."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from analysis.evidence import gather
from analysis.importance import param_importance

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(stop_at, n=30, epochs=18, seed=0):
    """``acc`` at epoch e = 0.1 e/epochs + 0.5 - 0.4 j (strong j is worse) + 0.02 n;
    ``stop_at(j, number)`` is where the trial stops (None: the end; "fail": FAIL)."""
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    rows = []
    for _ in range(n):
        t = study.ask()
        j, noise = t.suggest_float("j", 0, 1), t.suggest_float("n", 0, 1)
        stop = stop_at(j, t.number)
        last = epochs if stop in (None, "fail") else stop
        for e in range(1, last + 1):
            value = 0.1 * e / epochs + 0.5 - 0.4 * j + 0.02 * noise
            rows.append({"trial": t.number, "epoch": e, "acc": value})
            t.report(value, e)
        if stop == "fail":
            study.tell(t, state=TrialState.FAIL)
        elif stop is None:
            study.tell(t, value)
        else:
            study.tell(t, state=TrialState.PRUNED)
    return study, rows


def test_all_trials_complete_the_evidence_is_their_final_values():
    study, rows = _study(lambda j, n: None)
    ev = gather(study.trials, rows, metric="acc", direction="maximize")
    assert (ev.epoch, ev.n, ev.pruned, ev.reported) == (18, 30, 0, 30)
    assert sorted(ev.values()) == sorted(t.value for t in study.trials)
    assert ev.describe() == "30 of 30 trials, acc at their last epoch"


def test_pruned_trials_are_read_where_they_still_were_and_their_effect_is_seen():
    # what the pruner does to strong j: stops it at epoch 10; the completed trials hold
    # only weak j, where j barely varies and the noise parameter decides
    study, rows = _study(lambda j, n: 10 if j > 0.3 else None)
    pruned = sum(t.state == TrialState.PRUNED for t in study.trials)
    assert pruned >= 15
    ev = gather(study.trials, rows, metric="acc", direction="maximize")
    assert (ev.epoch, ev.n, ev.pruned) == (10, 30, pruned)
    assert "30 of 30 trials, acc at epoch 10" in ev.describe()
    at10 = {r["trial"]: r["acc"] for r in rows if r["epoch"] == 10}
    assert sorted(ev.values()) == sorted(at10.values())
    assert param_importance(ev.study(), evaluator="fanova").top(1) == ["j"]


def test_failed_trials_are_left_out_and_coverage_decides_the_epoch():
    # ASHA-like: a third go past epoch 2; trial 0 fails
    study, rows = _study(lambda j, n: "fail" if n == 0 else (None if n % 3 == 0 else 2))
    ev = gather(study.trials, rows, metric="acc", direction="maximize")
    assert ev.reported == 29 and ev.epoch == 2 and ev.n == 29
    assert ev.pruned == sum(t.state == TrialState.PRUNED for t in study.trials)
    # with a low enough coverage the later, thinner epoch is chosen
    late = gather(study.trials, rows, metric="acc", direction="maximize", coverage=0.3)
    assert late.epoch == 18 and late.n == 9


def test_nothing_reported_means_no_epoch():
    study, _ = _study(lambda j, n: None, n=3)
    ev = gather(study.trials, [], metric="acc", direction="maximize")
    assert (ev.epoch, ev.n, ev.describe()) == (None, 0, "no trial reported the objective")


def test_too_few_trials_for_the_rule_take_the_most_reported_epoch():
    study, rows = _study(lambda j, n: None if n == 0 else 1, n=3)
    ev = gather(study.trials, rows, metric="acc", direction="maximize")
    assert ev.epoch == 1 and ev.n == 3
    with pytest.raises(ValueError):
        param_importance(ev.study(), evaluator="nope")
