"""Failures and lost nodes: retried from checkpoints, recorded once, never retried forever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState

from search import RunError, run_search
from spaces import parse_spec


def flaky(config):
    """Checkpoints every epoch; fails at epoch 2 — always (x > 0.5: a 'CUDA OOM') or once."""
    import tempfile

    import torch
    from ray import tune

    x, start = config["x"], 0
    attempts = Path(config["log_dir"]) / f"attempts-{x:.6f}"
    with attempts.open("a") as f:
        f.write("x\n")
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(Path(d, "epoch").read_text())
    for epoch in range(start + 1, 5):
        if epoch == 2 and (x > 0.5 or len(attempts.read_text().split()) == 1):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        with tempfile.TemporaryDirectory() as d:
            Path(d, "epoch").write_text(str(epoch))
            tune.report({"score": x * epoch}, checkpoint=tune.Checkpoint.from_directory(d))


def _spec(log_dir: Path, **budget):
    return parse_spec(
        {
            "study": {
                "name": "flaky",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": {"name": "random", "seed": 5},  # x: 0.22, 0.87, 0.21, 0.92
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 4, "epochs": 4, "concurrency": 2, **budget},
            "params": {
                "x": {"type": "float", "low": 0.0, "high": 1.0},
                "log_dir": {"type": "fixed", "value": str(log_dir)},
            },
        },
        source="flaky.yaml",
        builtin_trainable=False,
    )


@pytest.mark.slow
def test_failures_are_retried_up_to_the_limit_then_recorded_fail(ray_local, tmp_path):
    result = run_search(
        _spec(tmp_path, max_failures=2), out=tmp_path / "run", trainable=flaky, verbose=False
    )
    study = optuna.load_study(study_name="flaky", storage=result.storage)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert len(trials) == 4
    assert sum(t.params["x"] > 0.5 for t in trials) == 2  # two of each kind
    for t in trials:
        attempts = len((tmp_path / f"attempts-{t.params['x']:.6f}").read_text().split())
        if t.params["x"] > 0.5:  # deterministic: 1 try + 2 retries, then FAIL with its reason
            assert attempts == 3
            assert t.state == TrialState.FAIL
            assert "OutOfMemoryError: CUDA out of memory (simulated)" in t.user_attrs["fail_reason"]
        else:  # transient: the retry resumed from the epoch-1 checkpoint and finished
            assert attempts == 2
            assert t.state == TrialState.COMPLETE and t.value == pytest.approx(4 * t.params["x"])
            assert sorted(t.intermediate_values) == [1, 2, 3, 4]
    assert {t.state for t in trials} == {TrialState.FAIL, TrialState.COMPLETE}
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert [r["number"] for r in rows] == list(range(4))


def test_a_trial_no_node_can_hold_is_refused_before_anything_is_written(ray_local, tmp_path):
    spec = _spec(tmp_path, resources={"cpu": 64, "gpu": 0.25})
    with pytest.raises(RunError) as info:
        run_search(spec, out=tmp_path / "run", trainable=flaky, verbose=False)
    assert "each asks for 64 CPU and 0.25 GPU (budget/resources)" in str(info.value)
    assert "the nodes have: 2 CPU, 0 GPU" in str(info.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_lost_worker_node_loses_nothing(tmp_path):
    """Head + 2 worker nodes (ray.cluster_utils.Cluster); one dies mid-trial."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "cluster_run.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # from a file: Ray's log lines (a lost node's heartbeat warning) share the
    # child's stdout and can be written inside a printed line
    killed = json.loads((tmp_path / "killed.json").read_text(encoding="utf-8"))
    assert killed, "the worker node was never killed"
    study = optuna.load_study(study_name="nodes", storage=f"sqlite:///{out / 'study.db'}")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4  # the budget, nothing lost
    for t in trials:
        assert t.value == pytest.approx(6 * t.params["x"])
    victim = trials[killed["number"]]
    rows = [
        json.loads(line)
        for line in (out / "tune" / f"trial_{victim.user_attrs['tune_trial_id']}" / "result.json")
        .read_text()
        .splitlines()
        if line.strip()
    ]
    last = rows[-1]
    # retried on the other node, from its checkpoint: not from epoch 1
    assert last["iterations_since_restore"] < last["training_iteration"] == 6
    assert last["node"] != killed["node"]
    table = pq.read_table(out / "trials.parquet").to_pylist()
    assert [r["number"] for r in table] == [0, 1, 2, 3]
    assert all(r["state"] == "COMPLETE" for r in table)


def test_scheduler_and_logger_registries_match_what_a_space_may_name():
    from search.tuner import LOGGER_CALLBACKS, SCHEDULERS
    from spaces.study import LOGGERS, TUNE_SCHEDULERS

    assert set(SCHEDULERS) == {"optuna", *TUNE_SCHEDULERS}  # optuna: no scheduler named
    assert set(LOGGER_CALLBACKS) == set(LOGGERS)


def steady(config):
    from ray import tune

    for epoch in range(1, 3):
        tune.report({"score": config["x"] * epoch})


@pytest.mark.parametrize("loggers", [[], ["csv"]])
def test_trials_keep_result_json_and_only_the_loggers_named(
    ray_local, tmp_path, monkeypatch, loggers
):
    from analysis.results import result_rows

    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.delenv("TUNE_DISABLE_STRICT_METRIC_CHECKING", raising=False)
    spec = parse_spec(
        {
            "study": {
                "name": "steady",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": {"name": "random", "seed": 1},
                "pruner": {"name": "none"},
                "loggers": loggers,
            },
            "budget": {"trials": 2, "epochs": 2, "concurrency": 2},
            "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        },
        source="steady.yaml",
        builtin_trainable=False,
    )
    run_search(spec, out=tmp_path / "run", trainable=steady, verbose=False)
    trials = sorted((tmp_path / "run" / "tune").glob("trial_*"))
    assert len(trials) == 2
    for directory in trials:
        rows = result_rows(str(directory / "result.json"))
        assert [r["training_iteration"] for r in rows] == [1, 2]
        # Tune's automatic CSV and TensorBoard loggers are off unless named
        assert (directory / "progress.csv").exists() == ("csv" in loggers)
        assert not list(directory.glob("events.out.tfevents.*"))
    # the experiment's environment is the experiment's only
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
    assert "TUNE_DISABLE_STRICT_METRIC_CHECKING" not in os.environ


def test_an_address_where_nothing_answers_is_refused_before_ray():
    import socket

    from search.tuner import check_address
    from trainables.errors import InputError

    with socket.socket() as server:  # something listens: left to Ray
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        check_address(f"127.0.0.1:{port}")
        check_address(f"ray://127.0.0.1:{port}")
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):  # closed now
        with pytest.raises(InputError, match=rf"--address {address}: no Ray cluster answers"):
            check_address(address)
    check_address("auto")  # Ray's own lookup
    check_address("ray://head-node")  # no port: Ray's default
