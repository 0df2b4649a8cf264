"""trials.parquet and curves.parquet from a real study and Tune logs (no Ray run)."""

from __future__ import annotations

import json

import optuna
import pyarrow.parquet as pq
import pytest
import yaml

from analysis.tables import write_tables


def _log(run, experiment, tune_id, rows):
    d = run / experiment / f"trial_{tune_id}"
    d.mkdir(parents=True)
    with (d / "result.json").open("w") as f:
        for i, row in enumerate(rows, start=1):
            f.write(json.dumps({"trial_id": tune_id, "training_iteration": i, **row}) + "\n")


@pytest.fixture
def run(tmp_path):
    spec = {
        "study": {"name": "t", "objective": {"metric": "acc", "direction": "maximize"}},
        "budget": {"epochs": 3},
        "params": {"x": {"type": "float", "low": 0, "high": 1}},
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    study = optuna.create_study(
        study_name="t", storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize"
    )
    for tune_id, series in (("a", [0.2, 0.5, 0.4]), ("b", [0.1])):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr("tune_trial_id", tune_id)
        trial.set_user_attr("fixed/train/seed", 7)
        _log(
            tmp_path,
            "tune",
            tune_id,
            [{"acc": v, "loss": 1 - v, "lr": v, "mine": v, "time_total_s": 1.0} for v in series],
        )
        if tune_id == "a":
            study.tell(trial, series[-1])
        else:
            trial.set_user_attr("pruned_at", 1)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    # an interrupted trial's re-run from its checkpoint at epoch 1: inherits epoch 1
    rerun = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    rerun.set_user_attr("tune_trial_id", "c")
    rerun.set_user_attr("resumed_from", 1)
    rerun.set_user_attr("resume_step", 1)
    rerun.set_user_attr("seed", 8)  # it ran a configuration sampled again, with seed 8
    _log(tmp_path, "tune.1", "c", [{"acc": 0.3, "loss": 0.7}, {"acc": 0.35, "loss": 0.65}])
    study.tell(rerun, 0.35)
    return tmp_path


def test_one_row_per_trial_with_final_and_best_in_each_metrics_direction(run):
    trials_path, curves_path = write_tables(run)
    rows = {r["number"]: r for r in pq.read_table(trials_path).to_pylist()}
    a = rows[0]
    assert (a["state"], a["value"], a["epochs"], a["final/acc"]) == ("COMPLETE", 0.4, 3, 0.4)
    assert a["best/acc"] == 0.5  # maximised, the objective
    assert a["best/loss"] == 0.5  # minimised: its series is 0.8, 0.5, 0.6
    assert a["final/lr"] == 0.4 and "best/lr" not in a  # not a score: no best
    assert a["final/mine"] == 0.4 and "best/mine" not in a  # undeclared: no best guessed
    assert a["param/x"] is not None and a["param/train/seed"] == 7 and a["seed"] == 7
    assert rows[1]["state"] == "PRUNED" and rows[1]["pruned_at"] == 1
    c = rows[2]
    assert (c["epochs"], c["resumed_from"], c["final/acc"], c["seed"]) == (3, 1, 0.35, 8)
    curves = pq.read_table(curves_path).to_pylist()
    assert [(r["epoch"], r["acc"]) for r in curves if r["trial"] == 2] == [
        (1, 0.1),  # inherited from trial 1's epoch 1
        (2, 0.3),
        (3, 0.35),
    ]
    assert pq.read_table(trials_path).schema.metadata[b"sslsearch.schema"] == b"trials/3"


def test_an_interrupted_writes_temporary_files_go_and_tables_are_readable_by_all(run):
    import os
    import stat

    stale = run / ".trials.parquet.abc123.tmp"  # what a kill during a write leaves
    stale.write_bytes(b"half a table")
    trials_path, curves_path = write_tables(run)
    assert not stale.exists() and not list(run.glob(".*.tmp"))
    mask = os.umask(0)
    os.umask(mask)
    for path in (trials_path, curves_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask  # not mkstemp's 0600
