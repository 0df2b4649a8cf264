"""The Optuna pruning scheduler inside a real Ray Tune run, against plain Optuna."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search import run_search
from spaces import parse_spec


def score_curve(config):
    from ray import tune

    for step in range(1, 7):
        tune.report({"score": config["quality"] + 0.01 * step})


def replay_in_plain_optuna(qualities, pruner):
    """The states a plain Optuna study gives the same curves, one trial after another."""
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for q in qualities:
        trial = study.ask()
        state = TrialState.COMPLETE
        for step in range(1, 7):
            trial.report(q + 0.01 * step, step)
            if trial.should_prune():
                state = TrialState.PRUNED
                break
        study.tell(trial, None if state == TrialState.PRUNED else q + 0.06, state=state)
    return [(t.state, t.last_step) for t in study.trials]


@pytest.mark.slow
def test_worse_than_median_trials_are_pruned_like_plain_optuna(ray_local, tmp_path):
    pruner_opts = {"n_startup_trials": 3, "n_warmup_steps": 1}
    spec = parse_spec(
        {
            "study": {
                "name": "prune",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": {"name": "random", "seed": 3},
                "pruner": {"name": "median", **pruner_opts},
            },
            "budget": {"trials": 10, "epochs": 6, "concurrency": 1},
            "params": {"quality": {"type": "float", "low": 0.0, "high": 1.0}},
        },
        source="test",
        builtin_trainable=False,
    )
    result = run_search(spec, out=tmp_path / "run", trainable=score_curve, verbose=False)
    study = optuna.load_study(study_name="prune", storage=result.storage)
    trials = sorted(study.trials, key=lambda t: t.number)
    states = [t.state for t in trials]
    assert len(trials) == 10
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    expected = replay_in_plain_optuna(
        [t.params["quality"] for t in trials], optuna.pruners.MedianPruner(**pruner_opts)
    )
    assert [(t.state, t.last_step) for t in trials] == expected
    for t in trials:
        if t.state == TrialState.PRUNED:
            # recorded PRUNED with the step it stopped at and its last value
            assert t.user_attrs["pruned_at"] == t.last_step < 6
            assert t.value == pytest.approx(t.params["quality"] + 0.01 * t.last_step)
            completed_before = [
                u.value for u in trials[: t.number] if u.state == TrialState.COMPLETE
            ]
            median = sorted(completed_before)[len(completed_before) // 2]
            assert t.params["quality"] + 0.06 < median + 0.04
        else:
            assert t.value == pytest.approx(t.params["quality"] + 0.06)
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert [r["state"] for r in table] == [s.name for s in states]
    assert [r["epochs"] for r in table] == [t.last_step for t in trials]
    assert [r["pruned_at"] for r in table] == [
        t.last_step if t.state == TrialState.PRUNED else None for t in trials
    ]


@pytest.mark.slow
def test_failures_are_recorded_with_their_reason(ray_local, tmp_path):
    def flaky(config):
        from ray import tune

        if config["kind"] == "raise":
            raise RuntimeError("boom from the trial")
        if config["kind"] == "nan":
            tune.report({"score": float("nan")})
            return
        if config["kind"] == "missing":
            tune.report({"other": 1.0})
            return
        tune.report({"score": 1.0})

    spec = parse_spec(
        {
            "study": {
                "name": "fail",
                "objective": {"metric": "score"},
                # seed 2 draws every kind within 8 trials
                "sampler": {"name": "random", "seed": 2},
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 8, "epochs": 1, "concurrency": 2},
            "params": {
                "kind": {"type": "categorical", "choices": ["ok", "raise", "nan", "missing"]}
            },
        },
        source="test",
        builtin_trainable=False,
    )
    run_search(spec, out=tmp_path / "run", trainable=flaky, verbose=False)
    study = optuna.load_study(
        study_name="fail", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    )
    seen = set()
    for t in study.trials:
        kind = t.params["kind"]
        seen.add(kind)
        assert t.state != TrialState.RUNNING
        if kind == "ok":
            assert t.state == TrialState.COMPLETE and t.value == 1.0
            continue
        assert t.state == TrialState.FAIL
        reason = t.user_attrs["fail_reason"]
        if kind == "raise":
            assert "RuntimeError: boom from the trial" in reason
        elif kind == "nan":
            assert reason == "objective metric 'score' is nan"
        else:
            assert "'score' was not reported" in reason and "other" in reason
    assert seen == {"ok", "raise", "nan", "missing"}


@pytest.mark.slow
def test_tune_asha_early_stops_are_recorded_pruned(ray_local, tmp_path):
    spec = parse_spec(
        {
            "study": {
                "name": "asha",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": {"name": "random", "seed": 3},
                "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
            },
            "budget": {"trials": 8, "epochs": 6, "concurrency": 1},
            "params": {"quality": {"type": "float", "low": 0.0, "high": 1.0}},
        },
        source="test",
        builtin_trainable=False,
    )
    assert spec.study.pruner.name == "none"
    result = run_search(spec, out=tmp_path / "run", trainable=score_curve, verbose=False)
    study = optuna.load_study(study_name="asha", storage=result.storage)
    states = [t.state for t in study.trials]
    assert TrialState.PRUNED in states and TrialState.COMPLETE in states
    for t in study.trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs["pruned_at"] == t.last_step < 6
        else:
            assert t.last_step == 6 and t.value == pytest.approx(t.params["quality"] + 0.06)


def test_a_scheduler_and_a_pruner_together_are_refused():
    with pytest.raises(Exception, match="a Tune scheduler replaces the Optuna pruner"):
        parse_spec(
            {"study": {"scheduler": {"name": "asha"}, "pruner": {"name": "median"}}},
            source="test",
        )


@pytest.mark.parametrize(("pruner", "asked"), [("none", 0), ("median", 3)])
def test_a_pruner_that_never_prunes_is_not_asked(tmp_path, monkeypatch, pruner, asked):
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from search.pruning import OptunaPruningScheduler
    from search.sampler import OptunaSearcher
    from search.tuner import build_bridge
    from spaces import define_by_run

    spec = parse_spec(
        {
            "study": {"name": "nop", "objective": {"metric": "score"}, "pruner": {"name": pruner}},
            "budget": {"trials": 1, "epochs": 4},
            "params": {"x": {"type": "float", "low": 0, "high": 1}},
        },
        source="test",
        builtin_trainable=False,
    )
    bridge = build_bridge(spec, f"sqlite:///{tmp_path / 'study.db'}", "tune")
    OptunaSearcher(bridge, define_by_run(spec), metrics=["score"], modes=["max"]).suggest("t")
    scheduler = OptunaPruningScheduler(bridge, metric="score", max_t=4)
    calls = []
    original = optuna.Trial.should_prune
    monkeypatch.setattr(optuna.Trial, "should_prune", lambda t: calls.append(1) or original(t))
    trial = SimpleNamespace(trial_id="t")
    decisions = [
        scheduler.on_trial_result(None, trial, {"score": e / 8, "training_iteration": e})
        for e in range(1, 5)
    ]
    assert decisions == [TrialScheduler.CONTINUE] * 4
    assert len(calls) == asked  # epochs 1-3 (epoch 4 is the last: never asked)
    assert bridge.study.trials[0].intermediate_values == {e: e / 8 for e in range(1, 5)}
