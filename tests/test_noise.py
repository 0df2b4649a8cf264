"""The noise floor: the best configuration re-run with other seeds (search.noise),
read back as a spread (analysis.noise)."""

from __future__ import annotations

import json
import statistics

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from analysis.noise import NoiseFloor, noise_floor, noise_study_name


def _rerun(of, seed, value=None):
    state = TrialState.COMPLETE if value is not None else TrialState.FAIL
    return create_trial(state=state, value=value, user_attrs={"noise_of": of, "seed": seed})


def test_the_band_is_the_95_percent_spread_of_two_runs():
    floor = NoiseFloor(incumbent=3, values=(0.81, 0.84, 0.80, 0.83), seeds=(1, 2, 3))
    sd = statistics.stdev([0.81, 0.84, 0.80, 0.83])
    assert floor.sd == pytest.approx(sd) and floor.band == pytest.approx(1.96 * 2**0.5 * sd)
    assert "sd 0.0183" in floor.describe("acc") and "seed(s) 1, 2, 3" in floor.describe("acc")
    lone = NoiseFloor(incumbent=3, values=(0.81,))
    assert lone.sd is None and lone.band is None and "too few values" in lone.describe("acc")


def test_re_runs_are_grouped_by_the_trial_they_repeat():
    reruns = [
        _rerun(2, 1, 0.5),
        _rerun(7, 2, 0.92),
        _rerun(7, 1, 0.9),
        _rerun(7, 3),
        _rerun(9, 1, 1),
    ]
    values = {2: 0.6, 7: 0.91}  # trial 9 is not a completed trial of this run
    floor = noise_floor(reruns, values, prefer=7)
    # seeds in order, the failed one counted, not valued
    assert (floor.incumbent, floor.values, floor.seeds, floor.failed) == (
        7,
        (0.91, 0.9, 0.92),
        (1, 2),
        1,
    )
    assert noise_floor(reruns, values, prefer=5).incumbent == 7  # the last one re-run
    assert noise_floor(reruns, values, prefer=2).values == (0.6, 0.5)
    assert noise_floor([], values) is None and noise_floor(reruns, {}) is None


def _spec(params=None, **budget):
    from spaces import parse_spec

    params = params or {"mask/ratio": {"type": "float", "low": 0.2, "high": 0.8}}
    return parse_spec(
        {
            "study": {
                "name": "nf",
                "objective": {"metric": "knn_top1"},
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 3, "epochs": 2, "concurrency": 2, **budget},
            "aug": {"resized_crop": {"min_scale": 0.7}},
            "train": {"seed": 5},
            "params": params,
        },
        source="test",
    )


def _experiment_trials(run_dir, name):
    from analysis.results import result_rows

    trials = sorted((run_dir / name).glob("trial_*/result.json"))
    return [result_rows(str(p)) for p in trials]


@pytest.mark.slow
def test_the_best_configuration_re_runs_with_the_next_seeds_and_never_twice(ray_local, tmp_path):
    from analysis.outcome import digest
    from search import resume_search, run_search
    from search.noise import incumbent_config
    from spaces import load_spec

    run_dir = tmp_path / "run"
    run_search(_spec(noise_seeds=1), out=run_dir, verbose=False)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    best = optuna.load_study(study_name="nf", storage=storage).best_trial
    noise = optuna.load_study(study_name=noise_study_name("nf"), storage=storage)
    assert [(t.user_attrs["noise_of"], t.user_attrs["seed"]) for t in noise.trials] == [
        (best.number, 6)  # the trials' train.seed (5) + 1
    ]
    assert noise.trials[0].params == best.params and noise.trials[0].state == TrialState.COMPLETE
    # the config rebuilt for the re-run is exactly what the best trial ran, but the seed
    [best_rows] = [
        rows
        for rows in _experiment_trials(run_dir, "tune")
        if rows and rows[0]["config"]["mask"]["ratio"] == best.params["mask/ratio"]
    ] or [None]
    rebuilt = incumbent_config(_spec(), best)
    assert json.loads(json.dumps(rebuilt)) == {
        k: v for k, v in best_rows[0]["config"].items() if k in rebuilt
    }
    [rerun] = _experiment_trials(run_dir, "noise.0")
    assert rerun[-1]["config"]["train"]["seed"] == 6 and rerun[-1]["epoch"] == 2
    assert rerun[-1]["config"]["mask"] == best_rows[0]["config"]["mask"]
    assert noise.trials[0].value == rerun[-1]["knn_top1"]

    # asked for one more seed, a resume runs only that one
    spec = load_spec(run_dir / "spec.yaml", overrides={"budget.noise_seeds": 2})
    resume_search(run_dir, spec=spec, verbose=False)
    seeds = [t.user_attrs["seed"] for t in noise.get_trials()]
    assert seeds == [6, 7]
    [again] = _experiment_trials(run_dir, "noise.1")
    assert again[-1]["config"]["train"]["seed"] == 7
    floor = digest(run_dir).noise
    assert floor.incumbent == best.number and floor.seeds == (6, 7)
    assert floor.values == (best.value, noise.trials[0].value, noise.get_trials()[1].value)


@pytest.mark.slow
def test_seeds_the_search_ran_by_sampling_a_configuration_again_are_not_run_again(
    ray_local, tmp_path
):
    import pyarrow.parquet as pq

    from analysis.outcome import digest
    from search import run_search

    run_dir = tmp_path / "run"
    one = {"mask/ratio": {"type": "categorical", "choices": [0.5]}}  # every trial: one config
    run_search(_spec(one, noise_seeds=2), out=run_dir, verbose=False)
    rows = pq.read_table(run_dir / "trials.parquet").to_pylist()
    assert [(r["number"], r["seed"]) for r in rows] == [(0, 5), (1, 6), (2, 7)]
    for r in rows:  # the trial trained with the seed the table says
        [ran] = [
            t for t in _experiment_trials(run_dir, "tune") if t[0]["trial_id"] in r["tune_trial_id"]
        ]
        assert ran[-1]["config"]["train"]["seed"] == r["seed"]
        assert ran[-1]["knn_top1"] == r["value"]
    assert len({r["value"] for r in rows}) > 1  # other seeds, other models
    storage = f"sqlite:///{run_dir / 'study.db'}"
    best = optuna.load_study(study_name="nf", storage=storage).best_trial
    noise = _reruns(storage)
    # the two seeds after the configuration's own, the best trial's left out: all
    # run already in the search, so copied and not trained again
    wanted = [s for s in (5, 6, 7) if s != rows[best.number]["seed"]]
    assert [t.user_attrs["seed"] for t in noise] == wanted
    by_seed = {r["seed"]: r for r in rows}
    assert [t.value for t in noise] == [by_seed[s]["value"] for s in wanted]
    assert [t.user_attrs["trial_number"] for t in noise] == [by_seed[s]["number"] for s in wanted]
    assert not list(run_dir.glob("noise.*"))
    assert "<th>seed</th>" in (run_dir / "report.html").read_text()  # the top trials' seeds
    floor = digest(run_dir).noise
    assert floor.incumbent == best.number and sorted(floor.values) == sorted(
        r["value"] for r in rows
    )


@pytest.mark.slow
def test_the_grid_samplers_repeats_are_the_noise_floors_seeds(ray_local, tmp_path):
    from analysis.outcome import digest
    from search import run_search
    from spaces import parse_spec

    data = _spec(noise_seeds=1).to_dict()
    data["study"]["sampler"] = {"name": "grid", "seed": 0, "repeats": 2}
    data["params"] = {"mask/ratio": {"type": "grid", "values": [0.5]}}
    data["budget"]["trials"] = 2
    run_dir = tmp_path / "run"
    run_search(parse_spec(data, source="test"), out=run_dir, verbose=False)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    search = sorted(
        optuna.load_study(study_name="nf", storage=storage).trials, key=lambda t: -t.value
    )
    [noise] = _reruns(storage)  # the other repeat's seed, copied: not trained a third time
    assert noise.user_attrs["seed"] == 5 + search[1].params["repeat"]
    assert noise.user_attrs["trial_number"] == search[1].number and noise.value == search[1].value
    assert not list(run_dir.glob("noise.*"))
    assert digest(run_dir).noise.values == (search[0].value, search[1].value)


def test_nothing_is_re_run_for_a_custom_trainable_pbt_or_zero_seeds(tmp_path):
    from analysis.rundir import RunDir
    from search.noise import noise_pending
    from spaces import parse_spec

    run = RunDir(tmp_path)
    assert noise_pending(run, _spec(), builtin=False) is None
    assert noise_pending(run, _spec(noise_seeds=0), builtin=True) is None
    pbt = parse_spec(
        {
            "study": {"name": "p", "scheduler": {"name": "pbt", "mutate": ["optim/lr"]}},
            "params": {"optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        },
        source="test",
    )
    assert noise_pending(run, pbt, builtin=True) is None  # no study needed to say so


def _reruns(storage: str) -> list:
    return optuna.load_study(study_name=noise_study_name("nf"), storage=storage).get_trials()


def _recorded(db) -> int:
    """Re-runs recorded so far, read without ever creating the database or its schema
    (Optuna's storage would, racing the run that creates it)."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            (count,) = con.execute(
                "SELECT count(*) FROM trials JOIN studies USING (study_id)"
                " WHERE study_name = ? AND state = 'COMPLETE'",
                (noise_study_name("nf"),),
            ).fetchone()
        return count
    except sqlite3.OperationalError:  # not created yet, or locked for a moment
        return 0


@pytest.mark.slow
def test_a_kill_during_the_re_runs_resumes_with_the_missing_seeds_only(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import yaml

    spec = _spec(noise_seeds=2, concurrency=1).to_dict()
    spec["budget"]["trials"] = 2
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(spec))
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    cmd = [sys.executable, "-m", "search", "run", "space.yaml", "--out", "run"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 400
    while not _recorded(tmp_path / "run" / "study.db") and proc.poll() is None:
        assert time.monotonic() < deadline, "no re-run was recorded"
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)  # while the second seed runs (one at a time)
    proc.communicate(timeout=60)
    # (the second seed needs seconds to train: it is all but always still running;
    # either way nothing recorded may change and no seed may run twice)
    kept = {t.user_attrs["seed"]: t.value for t in _reruns(storage)}
    assert 6 in kept

    out = subprocess.run(
        [sys.executable, "-m", "search", "resume", "run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Noise floor: trial" in out.stdout
    reruns = _reruns(storage)
    assert [(t.user_attrs["seed"], t.state) for t in reruns] == [
        (6, TrialState.COMPLETE),
        (7, TrialState.COMPLETE),
    ]
    assert {t.user_attrs["seed"]: t.value for t in reruns if t.user_attrs["seed"] in kept} == kept
    study = optuna.load_study(study_name="nf", storage=storage)
    assert len(study.trials) == 2  # the search's study holds the search's trials only


@pytest.mark.slow
def test_re_runs_that_raise_leave_the_tables_written_and_the_run_resumable(
    ray_local, tmp_path, monkeypatch, caplog
):
    import search.noise
    from search import run_search
    from search.errors import RunInterrupted

    def broken(*args, **kwargs):
        raise RuntimeError("the cluster went away")

    monkeypatch.setattr(search.noise, "measure_noise", broken)
    with pytest.raises(RunInterrupted, match="before the noise floor was measured"):
        run_search(_spec(trials=2), out=tmp_path / "run", verbose=False)
    assert (tmp_path / "run" / "trials.parquet").exists()
    assert "the noise floor could not be measured" in caplog.text
    assert "RuntimeError: the cluster went away" in caplog.text  # the traceback, not hidden
