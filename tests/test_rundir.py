"""The study where users look at it: a PostgreSQL server, the optuna CLI, optuna-dashboard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import pyarrow.parquet as pq
import pytest
from optuna.trial import TrialState

from search import run_search
from spaces import parse_spec


def curve(config):
    from ray import tune

    for step in range(1, 5):
        tune.report({"score": config["x"] * step / 4})


def _spec(storage: str | None):
    study = {
        "name": "shared",
        "objective": {"metric": "score", "direction": "maximize"},
        "sampler": {"name": "tpe", "seed": 1, "n_startup_trials": 2},
        "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
    }
    if storage:
        study["storage"] = storage
    data = {
        "study": study,
        "budget": {"trials": 5, "epochs": 4, "concurrency": 2},
        "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }
    return parse_spec(data, source="test", builtin_trainable=False)


@pytest.mark.slow
def test_a_study_on_a_postgresql_server(ray_local, tmp_path, postgres_url):
    result = run_search(_spec(postgres_url), out=tmp_path / "run", trainable=curve, verbose=False)
    assert result.storage == postgres_url
    assert not (tmp_path / "run" / "study.db").exists()
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.trials
    assert len(trials) == 5
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    for t in trials:
        assert t.intermediate_values == pytest.approx(
            {s: t.params["x"] * s / 4 for s in t.intermediate_values}
        )
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert [r["number"] for r in rows] == [0, 1, 2, 3, 4]
    # a second run directory can join the same study on the server (several drivers)
    again = run_search(_spec(postgres_url), out=tmp_path / "run2", trainable=curve, verbose=False)
    assert len(optuna.load_study(study_name="shared", storage=again.storage).trials) == 10


@pytest.mark.slow
def test_the_optuna_cli_and_optuna_dashboard_open_the_study_unmodified(ray_local, tmp_path):
    result = run_search(_spec(None), out=tmp_path / "run", trainable=curve, verbose=False)
    storage = result.storage
    assert storage == f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "optuna"), "trials", "--study-name", "shared",
         "--storage", storage, "-f", "json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    listed = json.loads(cli.stdout)
    study = optuna.load_study(study_name="shared", storage=storage)
    assert sorted(t["number"] for t in listed) == [t.number for t in study.trials]

    from optuna_dashboard import wsgi

    app = wsgi(storage)
    status: list[str] = []

    def get(path: str) -> dict:
        environ: dict = {"PATH_INFO": path}
        setup_testing_defaults(environ)
        body = b"".join(app(environ, lambda s, h, exc=None: status.append(s)))
        assert status[-1].startswith("200"), (path, status[-1], body[:300])
        return json.loads(body)

    studies = get("/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["shared"]
    detail = get(f"/api/studies/{studies[0]['study_id']}")
    assert len(detail["trials"]) == 5
    assert {t["state"] for t in detail["trials"]} <= {"Complete", "Pruned"}


# -- the run directory's own bookkeeping (no Ray) ----------------------------------------


def test_run_info_round_trips_and_names_the_next_experiment(tmp_path):
    from analysis.rundir import RunDir, RunInfo

    run = RunDir(tmp_path)
    assert run.info() == RunInfo() and not run.holds_run()  # no run.json: the defaults
    info = RunInfo(builtin_trainable=False, trainable="m:f", storage_path="s3://b/run")
    run.write_info(info.with_experiment(info.next_experiment()))
    again = run.info()
    assert again.experiments == ("tune", "tune.1") and again.next_experiment() == "tune.2"
    assert run.experiments_root() == "s3://b/run" and again.trainable == "m:f"
    run.write_info(RunInfo(started=False))
    assert not run.info().started and not run.holds_run()  # run.json alone: no run yet
    (tmp_path / "run.json").write_text('{"builtin_trainable": true, "experiments": ["tune"]}')
    assert run.info().started  # written by a version that wrote it once set up
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left


def test_storage_urls_are_resolved_against_the_run_directory(tmp_path):
    from analysis.rundir import default_storage_url, resolve_storage_url

    assert resolve_storage_url(None, tmp_path) == default_storage_url(tmp_path)
    assert resolve_storage_url("sqlite:///s.db", tmp_path) == f"sqlite:///{tmp_path / 's.db'}"
    assert resolve_storage_url("journal:/abs/j.log", tmp_path) == "journal:/abs/j.log"
    url = "postgresql://u@h/db"
    assert resolve_storage_url(url, tmp_path) == url


def test_the_spec_and_metrics_read_back(tmp_path):
    from analysis.rundir import RunDir
    from trainables.catalogue import shipped

    spec = parse_spec(
        {
            "study": {"name": "r"},
            "params": {"mask/ratio": {"type": "float", "low": 0, "high": 0.9}},
        },
        source="inline",
    )
    run = RunDir(tmp_path)
    run.write_spec(spec)
    assert run.holds_run() and run.spec().study == spec.study
    assert run.study_ref() == (f"sqlite:///{tmp_path.resolve() / 'study.db'}", "r")
    assert run.metrics() == shipped().metrics()  # no record: the registries' own
    run.write_metrics({"m": {"direction": "minimize", "labels": False, "headline": True}})
    assert run.metrics()["m"]["direction"] == "minimize"


def _run_with_study(path, *, direction="maximize"):
    import shutil

    from analysis.rundir import RunDir

    spec = parse_spec(
        {
            "study": {"name": "r", "objective": {"metric": "score", "direction": direction}},
            "params": {"x": {"type": "float", "low": 0, "high": 1}},
        },
        source="inline",
        builtin_trainable=False,
    )
    run = RunDir(path)
    path.mkdir(parents=True)
    run.write_spec(spec)
    study = optuna.create_study(
        study_name="r", storage=f"sqlite:///{path / 'study.db'}", direction="maximize"
    )
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    return run, shutil


def test_a_copied_run_directory_opens_its_own_study(tmp_path):
    from analysis.rundir import RunDir

    original, shutil = _run_with_study(tmp_path / "a")
    shutil.copytree(original.path, tmp_path / "b")
    copy = RunDir(tmp_path / "b")
    assert copy.study_ref()[0] == f"sqlite:///{(tmp_path / 'b' / 'study.db').resolve()}"
    copy.open_study().optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(copy.open_study().trials) == 3 and len(original.open_study().trials) == 2


def test_a_missing_or_foreign_study_is_refused_and_never_created(tmp_path):
    from analysis.rundir import RunDir
    from trainables.errors import InputError

    run, _ = _run_with_study(tmp_path / "a")
    (run.path / "study.db").unlink()
    with pytest.raises(InputError, match=r"its study is missing \(.*study.db does not exist\)"):
        run.open_study()
    assert not (run.path / "study.db").exists()  # not silently recreated

    other, _ = _run_with_study(tmp_path / "b", direction="minimize")
    with pytest.raises(
        InputError, match=r"directions are \['maximize'\], the spec's \['minimize'\]"
    ):
        other.open_study()
    foreign, _ = _run_with_study(tmp_path / "c")
    optuna.load_study(study_name="r", storage=foreign.study_ref()[0]).optimize(
        lambda t: t.suggest_float("y", 0, 1), n_trials=1
    )
    with pytest.raises(InputError, match="sampled y, which the spec does not declare"):
        RunDir(foreign.path).open_study()
    broken, _ = _run_with_study(tmp_path / "d")  # a study file that is no database
    (broken.path / "study.db").write_bytes(b"garbage{")
    with pytest.raises(InputError, match=r"its study cannot be read from sqlite:.*not a database"):
        broken.open_study()


def test_a_new_run_needs_a_directory_it_can_create_and_no_run_in_it(tmp_path, monkeypatch):
    from analysis.rundir import RunDir
    from trainables.errors import InputError

    RunDir(tmp_path / "a" / "b").require_new()  # creatable
    RunDir(tmp_path).require_new()  # an empty directory
    assert not (tmp_path / "a").exists()  # nothing created by the check
    (tmp_path / "f").write_text("x")
    with pytest.raises(InputError, match=r"f is a file, not a directory; choose another --out"):
        RunDir(tmp_path / "f").require_new()
    with pytest.raises(InputError, match=r"cannot create .*f/run: .*f is a file"):
        RunDir(tmp_path / "f" / "run").require_new()
    (tmp_path / "spec.yaml").write_text("kept\n")
    with pytest.raises(InputError, match="already holds a run"):
        RunDir(tmp_path).require_new()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # root may write anywhere: the permission is asked as os.access answers it
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(InputError, match=r"locked/run: .*locked is not writable"):
        RunDir(locked / "run").require_new()


def test_a_directory_the_file_system_refuses_is_one_line(tmp_path, monkeypatch):
    from analysis.rundir import RunDir
    from trainables.errors import InputError

    RunDir(tmp_path / "a" / "b").create()
    assert (tmp_path / "a" / "b").is_dir()
    RunDir(tmp_path / "a" / "b").create()  # there already: fine

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "mkdir", full)
    with pytest.raises(InputError) as err:
        RunDir(tmp_path / "c").create()
    assert str(err.value) == (
        f"cannot create {tmp_path / 'c'}: No space left on device; choose another --out"
    )


def test_a_storage_is_opened_before_a_run_writes_anything(tmp_path):
    from analysis.rundir import RunDir, connect_storage, resolve_storage_url
    from search import run_search
    from trainables.errors import InputError

    # a relative SQLite file in a folder of the run directory: the folder is made
    url = resolve_storage_url("sqlite:///db/s.db", tmp_path / "run")
    connect_storage(url, tmp_path / "run")
    assert (tmp_path / "run" / "db" / "s.db").exists()
    # a server that does not answer (nothing listens on port 1): one line, no traceback
    down = "postgresql+psycopg2://u@127.0.0.1:1/optuna?connect_timeout=2"
    with pytest.raises(InputError, match=r"study/storage: cannot open postgresql.*:1/"):
        connect_storage(down, tmp_path)
    with pytest.raises(InputError, match=r"cannot open sqlite:////no/such/x.db"):
        connect_storage("sqlite:////no/such/x.db", tmp_path)  # spaces check says it first
    # run refuses it before Ray and before run.json or spec.yaml
    spec = parse_spec({"study": {"storage": down}, "budget": {"trials": 1}}, source="s.yaml")
    with pytest.raises(InputError, match="cannot open"):
        run_search(spec, out=tmp_path / "r", trainable=lambda config: None)
    assert not RunDir(tmp_path / "r").holds_run() and not (tmp_path / "r" / "run.json").exists()
