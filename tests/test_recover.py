"""Resume: stale trials settled from the study and the Tune logs, kill -9 at random moments."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import study_created
from optuna.trial import TrialState

from analysis.rundir import RunDir
from search.recover import checkpoint_epoch, finished_count, latest_checkpoint, recover_study
from spaces import parse_spec

TOY = textwrap.dedent(
    """
    import json, os, tempfile, time
    from ray import tune

    def train(config):
        # deterministic curve: score(x, epoch); a checkpoint every epoch
        x, epochs, start = config["x"], config["train"]["epochs"], 0
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as d:
                with open(os.path.join(d, "state.json")) as f:
                    start = json.load(f)["epoch"]
        for epoch in range(start + 1, epochs + 1):
            time.sleep(0.25)
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    json.dump({"epoch": epoch}, f)
                tune.report(
                    {"score": x * epoch / epochs, "started_at": start},
                    checkpoint=tune.Checkpoint.from_directory(d),
                )
    """
)

SPACE = {
    "study": {
        "name": "toy",
        "objective": {"metric": "score", "direction": "maximize"},
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 4},
        "pruner": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 2},
    },
    "budget": {"trials": 12, "epochs": 4, "concurrency": 2},
    "params": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "tag": {"type": "fixed", "value": "a"},
    },
}


def _write_rows(directory: Path, rows: list[dict]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "result.json").open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.write('{"training_iteration": 9, "checkpoint_dir_na')  # the line a kill cut short


def _study(tmp_path: Path) -> optuna.Study:
    return optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", direction="maximize"
    )


def test_latest_checkpoint_needs_a_logged_row(tmp_path):
    d = tmp_path / "trial_a"
    (d / "checkpoint_000000").mkdir(parents=True)
    (d / "checkpoint_000001").mkdir()
    (d / "checkpoint_000002").mkdir()  # copied, but its row never written: not complete
    rows = [
        {"training_iteration": 1, "checkpoint_dir_name": "checkpoint_000000"},
        {"training_iteration": 2, "checkpoint_dir_name": "checkpoint_000001"},
    ]
    _write_rows(d, rows)
    assert latest_checkpoint(d) == (str(d / "checkpoint_000001"), 2)
    (d / "checkpoint_000001").rmdir()  # num_to_keep removed it: the row alone is not enough
    assert latest_checkpoint(d) == (str(d / "checkpoint_000000"), 1)
    assert latest_checkpoint(d.as_uri()) == (d.as_uri() + "/checkpoint_000000", 1)  # a URI
    assert latest_checkpoint(tmp_path / "nothing") is None


def test_checkpoint_epoch_counts_inherited_epochs(tmp_path):
    # a run continued from epoch 3 of another: its iteration 2 is its epoch 5
    d = tmp_path / "trial_b"
    (d / "checkpoint_000000").mkdir(parents=True)
    (d / "checkpoint_000001").mkdir()
    rows = [
        {"training_iteration": 1, "epoch": 4, "checkpoint_dir_name": "checkpoint_000000"},
        {"training_iteration": 2, "epoch": 5, "checkpoint_dir_name": "checkpoint_000001"},
    ]
    _write_rows(d, rows)
    assert checkpoint_epoch(str(d), rows) == (str(d / "checkpoint_000001"), 5)
    (d / "checkpoint_000001").rmdir()
    assert checkpoint_epoch(str(d), rows) == (str(d / "checkpoint_000000"), 4)
    plain = [{k: v for k, v in r.items() if k != "epoch"} for r in rows]  # no epoch: iterations
    assert checkpoint_epoch(str(d), plain) == (str(d / "checkpoint_000000"), 1)
    assert checkpoint_epoch(str(tmp_path / "nothing"), []) is None


def test_recover_settles_each_kind_of_stale_trial(tmp_path):
    study = _study(tmp_path)
    done = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study.tell(done, 0.5)
    stale = {}
    for name in ("pruned", "final", "checkpointed", "fresh", "unstarted"):
        t = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        if name != "unstarted":
            t.set_user_attr("tune_trial_id", name)
            t.set_user_attr("tune_experiment", "tune")
        for step in (1, 2, 3):
            t.report(step / 10, step)
        stale[name] = t
    stale["pruned"].set_user_attr("pruned_at", 3)
    stale["fresh"].set_user_attr("seed", 7)  # a configuration sampled again, on another seed
    study.enqueue_trial({"x": 0.3})  # a seeded configuration, killed right after ask()
    unsampled = study.ask()
    tune = tmp_path / "tune"
    _write_rows(
        tune / "trial_final",
        [{"training_iteration": e, "score": e / 4, "checkpoint_dir_name": None} for e in (1, 4)],
    )
    (tune / "trial_checkpointed" / "checkpoint_000001").mkdir(parents=True)
    _write_rows(
        tune / "trial_checkpointed",
        [
            {"training_iteration": 2, "score": 0.2, "checkpoint_dir_name": "checkpoint_000001"},
            {"training_iteration": 3, "score": 0.3},
        ],
    )
    _write_rows(tune / "trial_fresh", [{"training_iteration": 1, "score": 0.1}])

    recovery = recover_study(study, run=RunDir(tmp_path), metrics=["score"], epochs=4)

    trials = study.get_trials()
    by_number = {t.number: t for t in trials}
    assert recovery.pruned == (stale["pruned"].number,)
    assert by_number[stale["pruned"].number].state == TrialState.PRUNED
    assert recovery.completed == (stale["final"].number,)
    assert by_number[stale["final"].number].value == 1.0
    assert by_number[done.number].value == 0.5  # finished trials untouched
    reruns = {old: (new, step) for old, new, step in recovery.rerun}
    assert set(reruns) == {stale[n].number for n in ("checkpointed", "fresh", "unstarted")} | {
        unsampled.number
    }
    for name, step in (("checkpointed", 2), ("fresh", 0), ("unstarted", 0)):
        old = by_number[stale[name].number]
        new_number, got_step = reruns[old.number]
        new = by_number[new_number]
        assert old.state == TrialState.FAIL and old.user_attrs["interrupted"] is True
        assert f"re-run as trial {new_number}" in old.user_attrs["fail_reason"]
        assert new.state == TrialState.WAITING
        assert new.system_attrs["fixed_params"] == old.params  # enqueued with its parameters
        assert new.user_attrs["resumed_from"] == old.number
        assert got_step == step == new.user_attrs["resume_step"]
        assert new.user_attrs.get("seed") == (7 if name == "fresh" else None)  # the seed it had
    ckpt = by_number[reruns[stale["checkpointed"].number][0]].user_attrs["resume_checkpoint"]
    assert ckpt == str(tune / "trial_checkpointed" / "checkpoint_000001")
    new_number = next(new for old, new, _ in recovery.rerun if old == unsampled.number)
    assert by_number[new_number].system_attrs["fixed_params"] == {"x": 0.3}
    # COMPLETE 2 + PRUNED 1; the interrupted FAILs do not count against the budget
    assert finished_count(study) == 3


def _write_run_dir(run: Path, params: dict) -> Path:
    run.mkdir()
    data = {**SPACE, "params": params, "study": {**SPACE["study"], "storage": "sqlite:///x.db"}}
    spec = parse_spec(data, source="orig.yaml", builtin_trainable=False)
    (run / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    (run / "run.json").write_text(json.dumps({"builtin_trainable": False, "trainable": "m:f"}))
    return run


def _sslsearch(*args: str, cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=kwargs.pop("timeout", 300),
        **kwargs,
    )


def test_resume_refuses_an_edited_distribution_with_a_diff(tmp_path):
    run = _write_run_dir(tmp_path / "run", SPACE["params"])
    edited = {
        **SPACE,
        "params": {
            "x": {"type": "float", "low": 0.0, "high": 2.0},
            "y": {"type": "int", "low": 1, "high": 3},
            "tag": {"type": "fixed", "value": "b"},  # a new fixed value alone is allowed
        },
    }
    (tmp_path / "edited.yaml").write_text(yaml.safe_dump(edited))
    proc = _sslsearch("resume", "run", "edited.yaml", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert any(
        "cannot resume" in line and "changes what its study has sampled" in line for line in lines
    )
    assert any(
        "params/x: float low=0.0, high=1.0" in line and "-> float low=0.0, high=2.0" in line
        for line in lines
    )
    assert any("params/y: added (int low=1, high=3" in line for line in lines)
    assert not any("tag" in line for line in lines)
    assert not (run / "tune.1").exists()  # refused before anything ran


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(tmp_path):
    """Five interrupts (one Ctrl-C, four SIGKILLs of the driver), then a resume to the end.

    The Tune experiments live under ``--storage-path`` (a file:// URI), not in the run
    directory, so resume and the tables find checkpoints and logs through it."""
    (tmp_path / "toy_trainable.py").write_text(TOY, encoding="utf-8")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE), encoding="utf-8")
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    rng = random.Random(7)
    seen: dict[int, tuple[str, float | None]] = {}  # finished trial -> (state, value) when seen
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    shared = (tmp_path / "shared").as_uri()  # Tune's experiments on "shared storage", by URI
    cmd = ["run", "space.yaml", "--trainable", "toy_trainable:train", "--out", "run"]
    cmd += ["--storage-path", shared]
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "search", *cmd],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        before = _finished(storage)
        deadline = time.monotonic() + 240
        while _finished(storage) <= before and proc.poll() is None:  # some trial finishes
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.2)
        time.sleep(rng.uniform(0.0, 1.5))  # then a random moment
        assert proc.poll() is None, proc.stdout.read()[-2000:]
        if round_ == 0:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: Tune stops, the tables are written
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 130, out[-2000:]
            assert "continue it with: sslsearch resume" in out
            assert "Tuner.restore" not in out  # one resume hint: ours
            assert (tmp_path / "run" / "trials.parquet").exists()
        else:
            proc.kill()  # SIGKILL of the driver
            proc.communicate(timeout=60)
        study = optuna.load_study(study_name="toy", storage=storage)
        for t in study.trials:
            if t.state.is_finished() and not t.user_attrs.get("interrupted"):
                seen.setdefault(t.number, (t.state.name, t.value))
        cmd = ["resume", "run"]
    final = subprocess.run(
        [sys.executable, "-m", "search", *cmd],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]

    study = optuna.load_study(study_name="toy", storage=storage)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert finished_count(study) == 12  # exactly the budget
    for number, (state, value) in seen.items():  # nothing finished was changed
        assert (trials[number].state.name, trials[number].value) == (state, value)
    interrupted = [t for t in trials if t.user_attrs.get("interrupted")]
    assert interrupted, "no trial was interrupted: the test did not test resume"
    # a trial killed before it sampled (and not enqueued with a configuration) has
    # nothing to re-run; every other one is re-run once, with its own configuration
    configured = [t for t in interrupted if {**t.system_attrs.get("fixed_params", {}), **t.params}]
    for t in interrupted:
        if t not in configured:
            assert t.user_attrs["fail_reason"].startswith("interrupted before it sampled")
    reruns = {t.user_attrs["resumed_from"]: t for t in trials if "resumed_from" in t.user_attrs}
    assert sorted(reruns) == [t.number for t in configured]  # each re-run once, no duplicates
    for t in configured:  # (a trial killed before sampling keeps what it was enqueued with)
        assert reruns[t.number].params == {**t.system_attrs.get("fixed_params", {}), **t.params}
    # each session samples its own stream: no finished configuration is drawn twice
    fresh = [
        t.params["x"]
        for t in trials
        if t.state.is_finished()
        and not t.user_attrs.get("interrupted")
        and "resumed_from" not in t.user_attrs
    ]
    assert len(set(fresh)) == len(fresh), sorted(fresh)
    for t in trials:
        if t.state == TrialState.COMPLETE:  # the deterministic curve's end, resumed or not
            assert t.value == pytest.approx(t.params["x"])

    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    numbers = [r["number"] for r in rows]
    assert numbers == sorted(set(numbers)) == [t.number for t in trials]
    for r in rows:
        if r["state"] == "COMPLETE":
            assert r["value"] == pytest.approx(r["param/x"])
    curves = pq.read_table(tmp_path / "run" / "curves.parquet").to_pylist()
    from_checkpoint = [t for t in reruns.values() if t.user_attrs["resume_step"] > 0]
    for t in from_checkpoint:  # its own epochs start after the inherited checkpoint
        mine = [c for c in curves if c["trial"] == t.number]
        step = t.user_attrs["resume_step"]
        after = [c for c in mine if c["epoch"] > step]
        assert [c["epoch"] for c in mine] == sorted({c["epoch"] for c in mine})
        assert all(c["started_at"] == step for c in after)
    assert not (tmp_path / "run" / "tune").exists()
    shared_experiments = {p.name for p in (tmp_path / "shared" / "run").iterdir()}
    # a resume killed before Tune made its experiment leaves its name in run.json only
    assert {"tune"} < shared_experiments <= set(RunDir(tmp_path / "run").info().experiments)
    print(
        f"interrupted {len(interrupted)}, re-run from a checkpoint {len(from_checkpoint)}",
        file=sys.stderr,
    )


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    """A scheduler preempting the job sends SIGTERM: Ray's handler exited at once with a
    C++ stack on stderr, no tables and no word of how to resume."""
    (tmp_path / "toy_trainable.py").write_text(TOY, encoding="utf-8")
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE), encoding="utf-8")
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    cmd = ["run", "space.yaml", "--trainable", "toy_trainable:train", "--out", "run"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", *cmd],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 240
    while _finished(storage) < 1 and proc.poll() is None:  # a trial has finished
        assert time.monotonic() < deadline, "no trial finished"
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()[-2000:]
    proc.terminate()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "continue it with: sslsearch resume" in out
    assert "SIGTERM received" not in out
    assert (tmp_path / "run" / "trials.parquet").exists()
    study = optuna.load_study(study_name="toy", storage=storage)
    assert 1 <= finished_count(study) < 12  # stopped, not run to the end; resume goes on


def _finished(storage: str) -> int:
    if not study_created(Path(storage.removeprefix("sqlite:///")), "toy"):
        return 0  # (loading it now would race the run's creation of the tables)
    return finished_count(optuna.load_study(study_name="toy", storage=storage))


def grow(config):
    from ray import tune

    for epoch in range(1, config["train"]["epochs"] + 1):
        tune.report({"score": config["x"] * epoch})


@pytest.mark.slow
class Killed(BaseException):
    """What a SIGKILL at this moment leaves: nothing after it runs (not even ``finally``
    cleanup that matters here: the run directory's files are all written atomically)."""


def _killed(*args, **kwargs):
    raise Killed


def test_a_run_killed_before_its_study_exists_is_finished_by_resume(
    ray_local, tmp_path, monkeypatch
):
    import search.run
    from search import resume_search, run_search
    from trainables.errors import InputError

    data = {**SPACE, "budget": {"trials": 2, "epochs": 2, "concurrency": 2}}
    data["study"] = {**SPACE["study"], "pruner": {"name": "none"}}
    spec = parse_spec(data, source="a.yaml", builtin_trainable=False)
    with monkeypatch.context() as m:
        m.setattr(search.run, "_start", _killed)  # after spec.yaml, before the study
        with pytest.raises(Killed):
            run_search(spec, out=tmp_path / "run", trainable=grow, verbose=False)
    run = RunDir(tmp_path / "run")
    assert run.spec_path.exists() and not (run.path / "study.db").exists()
    assert not run.info().started
    with pytest.raises(InputError, match="already holds a run"):
        run_search(spec, out=run.path, trainable=grow, verbose=False)
    result = resume_search(run.path, trainable=grow, verbose=False)
    assert result.states == {"COMPLETE": 2}
    study = optuna.load_study(study_name="toy", storage=result.storage)
    assert [t.user_attrs["tune_experiment"] for t in study.trials] == ["tune"] * 2
    assert run.info().started and run.info().experiments == ("tune",)
    again = resume_search(run.path, trainable=grow, verbose=False)  # a started run, done
    assert again.states == {"COMPLETE": 2} and run.info().experiments == ("tune",)


@pytest.mark.slow
def test_a_run_killed_while_measuring_its_baselines_measures_them_on_resume(
    ray_local, tmp_path, monkeypatch
):
    import trainables.loop
    from search import resume_search, run_search
    from spaces import load_spec, shipped_spaces

    overrides = {"budget.trials": 1, "budget.epochs": 1, "budget.noise_seeds": 0}
    overrides["study.enqueue"] = [{"mask/ratio": 0.5}]
    spec = load_spec(shipped_spaces()["default"], overrides=overrides)
    with monkeypatch.context() as m:
        m.setattr(trainables.loop, "baseline_metrics", _killed)
        with pytest.raises(Killed):
            run_search(spec, out=tmp_path / "run", verbose=False)
    run = RunDir(tmp_path / "run")
    assert not (run.path / "baseline.json").exists() and not run.info().started
    study = run.open_study()  # created, with its enqueued configuration
    assert [t.state for t in study.trials] == [TrialState.WAITING]
    result = resume_search(run.path, verbose=False)
    assert result.states == {"COMPLETE": 1}
    study = run.open_study()
    assert [t.params["mask/ratio"] for t in study.trials] == [0.5]  # enqueued once, and run
    baselines = json.loads((run.path / "baseline.json").read_text())
    assert 0 < baselines["random_init"]["knn_top1"] < 1
    assert "baseline" in (run.path / "report.html").read_text().lower()


def test_resume_with_more_trials_and_a_new_fixed_value(ray_local, tmp_path):
    from search import resume_search, run_search

    data = {**SPACE, "budget": {"trials": 3, "epochs": 2, "concurrency": 2}}
    data["study"] = {**SPACE["study"], "pruner": {"name": "none"}}
    spec = parse_spec(data, source="a.yaml", builtin_trainable=False)
    run_search(spec, out=tmp_path / "run", trainable=grow, verbose=False)
    edited = {
        **data,
        "budget": {**data["budget"], "trials": 5},
        "params": {**data["params"], "tag": {"type": "fixed", "value": "b"}},
    }
    spec2 = parse_spec(edited, source="b.yaml", builtin_trainable=False)
    result = resume_search(tmp_path / "run", spec=spec2, trainable=grow, verbose=False)
    study = optuna.load_study(study_name="toy", storage=result.storage)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert [t.user_attrs["fixed/tag"] for t in trials] == ["a", "a", "a", "b", "b"]
    assert [t.user_attrs["tune_experiment"] for t in trials] == ["tune"] * 3 + ["tune.1"] * 2
    # the resume samples its own stream: its random start-up draws repeat none of the run's
    assert len({t.params["x"] for t in trials}) == 5
    assert (tmp_path / "run" / "spec.0.yaml").exists()  # the spec it ran with before
    assert yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())["budget"]["trials"] == 5
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert [r["value"] for r in rows] == pytest.approx([2 * t.params["x"] for t in trials])
    # nothing left to do: a second resume runs no trial and changes nothing
    again = resume_search(tmp_path / "run", trainable=grow, verbose=False)
    assert again.states == {"COMPLETE": 5}
