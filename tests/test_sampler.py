"""The study side: storages, enqueued configurations, a user's own trainable."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import optuna
import pyarrow.parquet as pq
import pytest

from analysis.rundir import open_storage
from search import run_search
from spaces import parse_spec


def curve(config):
    from ray import tune

    for step in range(1, 4):
        tune.report({"score": config["x"] * step})


SPACE = {
    "study": {
        "name": "own",
        "objective": {"metric": "score", "direction": "maximize"},
        "sampler": {"name": "random", "seed": 0},
        "pruner": {"name": "none"},
        "enqueue": [{"x": 0.75}],
    },
    "budget": {"trials": 3, "epochs": 3, "concurrency": 1},
    "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
}


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["journal:study.log", None])
def test_storages_and_enqueued_points(ray_local, tmp_path, storage):
    data = {**SPACE, "study": {**SPACE["study"], **({"storage": storage} if storage else {})}}
    spec = parse_spec(data, source="test", builtin_trainable=False)
    result = run_search(spec, out=tmp_path / "run", trainable=curve, verbose=False)
    if storage:
        assert result.storage == f"journal:{tmp_path / 'run' / 'study.log'}"
        assert (tmp_path / "run" / "study.log").exists()
        assert not (tmp_path / "run" / "study.db").exists()
    study = optuna.load_study(study_name="own", storage=open_storage(result.storage))
    trials = sorted(study.trials, key=lambda t: t.number)
    assert trials[0].params == {"x": 0.75}  # the enqueued configuration runs first
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert [t.value for t in trials] == pytest.approx([3 * t.params["x"] for t in trials])
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert rows[0]["param/x"] == 0.75 and len(rows) == 3


def test_enqueued_values_are_checked():
    bad = {**SPACE, "study": {**SPACE["study"], "enqueue": [{"x": 2.0}, {"y": 1}]}}
    with pytest.raises(Exception) as info:
        parse_spec(bad, source="test", builtin_trainable=False)
    text = str(info.value)
    assert "study/enqueue[0]/x: 2.0 is outside x's distribution" in text
    assert "study/enqueue[1]/y: not a sampled parameter of this space" in text


@pytest.mark.slow
def test_cli_runs_a_users_own_trainable(tmp_path):
    (tmp_path / "my_pretraining.py").write_text(
        textwrap.dedent(
            """
            from ray import tune

            def train(config):
                # e.g. an audio or point-cloud model: any Tune function trainable
                for epoch in range(1, 4):
                    tune.report({"val_score": config["model"]["width"] / 64 + 0.01 * epoch})
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "space.yaml").write_text(
        textwrap.dedent(
            """
            study:
              name: byo
              objective: {metric: val_score, direction: maximize}
              sampler: {name: random, seed: 0}
              pruner: {name: median, n_startup_trials: 1}
            budget: {trials: 3, epochs: 3, concurrency: 1}
            params:
              model/width: {type: int, low: 8, high: 64, step: 8}
            """
        ),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "search",
            "run",
            "space.yaml",
            "--trainable",
            "my_pretraining:train",
            "--out",
            "run",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    study = optuna.load_study(study_name="byo", storage=f"sqlite:///{tmp_path / 'run/study.db'}")
    assert len(study.trials) == 3
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert all(r["param/model/width"] % 8 == 0 for r in rows)
    bad = subprocess.run(
        [sys.executable, "-m", "search", "run", "space.yaml", "--trainable", "nope:train"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "cannot import nope" in bad.stderr


def test_a_trial_without_its_objective_in_the_last_report_says_which_report(tmp_path):
    from search.sampler import OptunaSearcher
    from search.tuner import build_bridge
    from spaces import define_by_run

    spec = parse_spec(
        {**SPACE, "params": {"x": {"type": "float", "low": 0, "high": 1}}},
        source="inline",
        builtin_trainable=False,
    )
    bridge = build_bridge(spec, f"sqlite:///{tmp_path / 'study.db'}", "tune")
    searcher = OptunaSearcher(bridge, define_by_run(spec), metrics=["score"], modes=["max"])
    searcher.suggest("late")
    bridge.trial("late").report(0.5, 1)  # epoch 1 reported the objective, epoch 2 did not
    searcher.on_trial_complete("late", {"training_iteration": 2, "other": 1.0})
    searcher.suggest("never")
    searcher.on_trial_complete("never", {"training_iteration": 1, "other": 1.0})
    late, never = bridge.study.trials
    assert late.state == never.state == optuna.trial.TrialState.FAIL
    assert late.user_attrs["fail_reason"].startswith(
        "its last report (epoch 2) lacks the objective metric 'score', which it reported up to "
        "epoch 1"
    )
    assert never.user_attrs["fail_reason"] == (
        "objective metric 'score' was not reported; reported: other, training_iteration"
    )


def test_each_resumed_session_samples_its_own_stream(tmp_path):
    from search.tuner import build_bridge

    spec = parse_spec(
        {**SPACE, "params": {"x": {"type": "float", "low": 0, "high": 1}}},
        source="inline",
        builtin_trainable=False,
    )
    draws = []
    for session in (0, 1, 2, 1):
        storage = f"sqlite:///{tmp_path / f'{len(draws)}.db'}"
        bridge = build_bridge(spec, storage, f"tune.{session}", session=session)
        trial = bridge.study.ask()
        draws.append(trial.suggest_float("x", 0, 1))
    assert len(set(draws[:3])) == 3  # the run and each resume: different draws
    assert draws[3] == draws[1]  # and the same session draws the same: reproducible


def test_ask_with_attrs_samples_as_study_ask_and_pops_enqueued_trials_first(tmp_path):
    from search.sampler import ask_with_attrs

    def study(name):
        return optuna.create_study(
            storage=f"sqlite:///{tmp_path / name}.db",
            sampler=optuna.samplers.TPESampler(
                seed=3, multivariate=True, constant_liar=True, n_startup_trials=4
            ),
        )

    ours, plain = study("ours"), study("plain")
    for s in (ours, plain):
        s.enqueue_trial({"x": 0.25}, user_attrs={"queued": True})
    for number in range(12):
        a = ask_with_attrs(ours, {"tune_trial_id": f"t{number}", "n": number})
        b = plain.ask()
        xa, xb = a.suggest_float("x", 0, 1), b.suggest_float("x", 0, 1)
        assert xa == xb  # the same draws as plain Optuna, the enqueued point first
        if number % 3 == 2:  # a trial still running when the next is asked: the liar counts it
            continue
        ours.tell(a, (xa - 0.6) ** 2)
        plain.tell(b, (xb - 0.6) ** 2)
    trials = optuna.load_study(
        study_name=ours.study_name, storage=f"sqlite:///{tmp_path / 'ours'}.db"
    ).trials
    assert trials[0].params == {"x": 0.25}
    assert trials[0].user_attrs == {"queued": True, "tune_trial_id": "t0", "n": 0}
    assert [t.user_attrs["tune_trial_id"] for t in trials] == [f"t{i}" for i in range(12)]
    assert [t.state for t in trials[2::3]] == [optuna.trial.TrialState.RUNNING] * 4


def _reseeding(tmp_path, enqueue, *, reseed=True, fixed=False):
    from search.sampler import OptunaSearcher
    from search.tuner import build_bridge
    from spaces import define_by_run

    spec = parse_spec(
        {
            **SPACE,
            "study": {**SPACE["study"], "enqueue": []},
            "budget": {"trials": 9, "epochs": 3},
            "train": {} if fixed else {"seed": 5},
            "params": {
                "c": {"type": "categorical", "choices": ["a", "b"]},
                **({"train/seed": {"type": "fixed", "value": 5}} if fixed else {}),
            },
        },
        source="inline",
        builtin_trainable=False,
    )
    bridge = build_bridge(spec, f"sqlite:///{tmp_path / 'study.db'}", "tune")
    for point in enqueue:
        bridge.study.enqueue_trial(point)
    searcher = OptunaSearcher(
        bridge, define_by_run(spec), metrics=["score"], modes=["max"], reseed=reseed
    )
    return bridge, searcher


def test_a_configuration_sampled_again_runs_with_a_seed_none_of_its_trials_used(tmp_path):
    points = [{"c": c} for c in "aabaa"]
    bridge, searcher = _reseeding(tmp_path, [*points, {"c": "a"}])
    seeds = [searcher.suggest(f"t{i}")["train"]["seed"] for i in range(5)]
    assert seeds == [5, 6, 5, 7, 8]
    # only a repeat records the seed it ran with (the others ran with their own)
    assert [t.user_attrs.get("seed") for t in bridge.study.trials[:5]] == [None, 6, None, 7, 8]
    searcher.on_trial_complete("t0", {"score": 1.0})
    searcher.on_trial_complete("t1", error=True)  # a seed that failed is still used

    # a new session (a resume) reads the seeds back from the study, once
    again, resumed = _reseeding(tmp_path, [])
    assert resumed.suggest("t5")["train"]["seed"] == 9
    # a trial interrupted by a crash is re-run with the seed it had, and a repeat
    # meanwhile does not take that seed
    study = again.study
    study._storage.set_trial_user_attr(study.trials[5]._trial_id, "interrupted", True)
    study.tell(5, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"c": "a"})
    study.enqueue_trial({"c": "a"}, user_attrs={"resumed_from": 5, "seed": 9})
    _, third = _reseeding(tmp_path, [])
    assert third.suggest("t6")["train"]["seed"] == 10
    assert third.suggest("t7")["train"]["seed"] == 9  # trial 7: the re-run of trial 5
    # killed after sampling a repeat, before recording its seed (it never trained):
    # its re-run from scratch chooses again, not the configuration's own seed (5)
    study.enqueue_trial({"c": "a"})
    killed = study.ask()
    killed.suggest_categorical("c", ["a", "b"])
    study._storage.set_trial_user_attr(killed._trial_id, "interrupted", True)
    study.tell(killed, state=optuna.trial.TrialState.FAIL)
    study.enqueue_trial({"c": "a"}, user_attrs={"resumed_from": killed.number, "resume_step": 0})
    _, fourth = _reseeding(tmp_path, [])
    assert fourth.suggest("t9")["train"]["seed"] == 11
    assert [t.params["c"] for t in study.get_trials()] == list("aabaaaaaaa")


def test_a_fixed_seed_parameter_records_the_seed_a_repeat_ran_with(tmp_path):
    bridge, searcher = _reseeding(tmp_path, [{"c": "a"}] * 2, fixed=True)
    assert [searcher.suggest(f"t{i}")["train"]["seed"] for i in range(2)] == [5, 6]
    first, again = bridge.study.trials
    assert first.user_attrs["fixed/train/seed"] == 5 and "seed" not in first.user_attrs
    assert again.user_attrs["fixed/train/seed"] == again.user_attrs["seed"] == 6


def test_same_seed_trains_a_configuration_sampled_again_as_it_is(tmp_path):
    bridge, searcher = _reseeding(tmp_path, [{"c": "a"}] * 3, reseed=False)
    assert [searcher.suggest(f"t{i}")["train"]["seed"] for i in range(3)] == [5, 5, 5]
    assert all("seed" not in t.user_attrs for t in bridge.study.trials)
