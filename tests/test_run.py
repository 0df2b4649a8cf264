"""One real study through `sslsearch run`, checked from its run directory."""

from __future__ import annotations

import subprocess
import sys

import optuna
import pyarrow.parquet as pq
import pytest
import yaml


@pytest.mark.slow
def test_sslsearch_run_writes_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "search",
            "run",
            "--out",
            str(run_dir),
            "--trials",
            "3",
            "--epochs",
            "2",
            "--concurrency",
            "2",
            "--set",
            "study.pruner=none",
            "--set",
            "probe.every=1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "trial 0 started" in out and "finished 3/3" in out
    assert "Best trial" in out and f"Run directory: {run_dir}" in out

    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    assert spec["budget"]["trials"] == 3 and spec["budget"]["epochs"] == 2
    study = optuna.load_study(study_name="default", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert set(study.trials[0].params) == {
        "mask/ratio",
        "optim/lr",
        "optim/weight_decay",
        "loss/mae/norm_pix",
    }
    for t in study.trials:
        assert sorted(t.intermediate_values) == [1, 2]
        assert t.value == t.intermediate_values[2]

    trials = pq.read_table(run_dir / "trials.parquet")
    curves = pq.read_table(run_dir / "curves.parquet")
    assert trials.schema.metadata[b"sslsearch.schema"] == b"trials/3"
    assert trials.num_rows == 3 and curves.num_rows == 3 * 2
    rows = trials.to_pylist()
    assert [r["number"] for r in rows] == [0, 1, 2]
    assert all(r["epochs"] == 2 and r["pruned_at"] is None for r in rows)
    by_trial = {t.number: t for t in study.trials}
    for r in rows:
        assert r["value"] == by_trial[r["number"]].value == r["final/knn_top1"]
        assert r["param/mask/ratio"] == by_trial[r["number"]].params["mask/ratio"]
        assert r["best/knn_top1"] >= r["final/knn_top1"]
        assert r["wall_time_s"] > 0
    curve_rows = curves.to_pylist()
    assert {(c["trial"], c["epoch"]) for c in curve_rows} == {
        (n, e) for n in range(3) for e in (1, 2)
    }
    assert {"loss", "knn_top1", "knn_top5", "lr"} <= set(curves.column_names)

    # `sslsearch report` rewrites the same tables from the study and the Tune results.
    (run_dir / "trials.parquet").unlink()
    report = subprocess.run(
        [sys.executable, "-m", "search", "report", str(run_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert pq.read_table(run_dir / "trials.parquet").to_pylist() == rows
    assert (run_dir / "report.html").exists() and (run_dir / "figures").is_dir()

    # the tables as users read them: pandas and DuckDB
    import duckdb
    import pandas as pd

    frame = pd.read_parquet(run_dir / "trials.parquet")
    assert list(frame["number"]) == [0, 1, 2]
    (best,) = duckdb.sql(
        f"SELECT number, value FROM '{run_dir / 'trials.parquet'}' ORDER BY value DESC LIMIT 1"
    ).fetchall()
    assert best == (max(rows, key=lambda r: r["value"])["number"], max(r["value"] for r in rows))
    epochs = duckdb.sql(f"SELECT count(*) FROM '{run_dir / 'curves.parquet'}'").fetchall()
    assert epochs == [(6,)]


@pytest.mark.slow
def test_every_probe_in_a_run_with_a_label_free_objective(ray_local, tmp_path):
    from search import run_search
    from spaces import parse_spec

    spec = parse_spec(
        {
            "study": {
                "name": "probes",
                "objective": {"metric": "rankme", "direction": "maximize"},
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 3, "epochs": 2, "concurrency": 2, "noise_seeds": 0},
            "aug": {"resized_crop": {"min_scale": 0.7}},
            "probe": {
                "names": ["knn", "linear", "rankme", "alpha_req", "align_uniform"],
                "every": 2,
                "linear": {"weight_decays": [0.01], "max_iter": 50},
            },
            "params": {"mask/ratio": {"type": "float", "low": 0.2, "high": 0.8}},
        },
        source="test",
    )
    result = run_search(spec, out=tmp_path / "run", verbose=False)
    assert result.states == {"COMPLETE": 3}
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    for r in rows:
        assert r["value"] == r["final/rankme"] > 1.0
        for metric in ("knn_top1", "linear_top1", "alpha_req", "alignment", "uniformity"):
            assert r[f"final/{metric}"] is not None, metric
        assert r["final/alignment"] > 0.0  # two different augmented views
    curves = pq.read_table(tmp_path / "run" / "curves.parquet").to_pylist()
    # probes ran at epoch 2 only (every 2): epoch 1 has no probe metrics
    assert [c["knn_top1"] is None for c in curves if c["trial"] == 0] == [True, False]


@pytest.mark.slow
def test_a_diverging_trial_is_recorded_fail_and_the_study_continues(ray_local, tmp_path):
    from search import run_search
    from spaces import parse_spec

    spec = parse_spec(
        {
            "study": {
                "name": "nan",
                "objective": {"metric": "knn_top1"},
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 2, "epochs": 2, "concurrency": 2, "noise_seeds": 0},
            "aug": {},
            "optim": {"grad_clip": 0.0, "warmup_epochs": 0},
            "params": {
                "optim/lr": {"type": "categorical", "choices": [0.001, 1.0e12]},
                "train/seed": {"type": "fixed", "value": 0},
            },
        },
        source="test",
    )
    run_search(spec, out=tmp_path / "run", verbose=False)
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    by_lr = {r["param/optim/lr"]: r for r in rows}
    assert len(by_lr) == 2  # seed 0 draws both learning rates
    assert by_lr[0.001]["state"] == "COMPLETE"
    bad = by_lr[1.0e12]
    assert bad["state"] == "FAIL"
    assert bad["fail_reason"].startswith("NonFiniteLossError: non-finite loss")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(__import__("spaces").shipped_spaces()))
def test_every_shipped_space_runs_one_trial_of_one_epoch(ray_local, tmp_path, name):
    from search import run_search
    from spaces import load_spec, shipped_spaces

    overrides = {"budget.trials": 1, "budget.epochs": 1, "budget.concurrency": 1}
    overrides["budget.noise_seeds"] = 0  # the noise floor has its own tests
    path = shipped_spaces()[name]
    if "shapes" in path.read_text():
        overrides["data.options.count"] = 300
    spec = load_spec(path, overrides=overrides)
    result = run_search(spec, out=tmp_path / "run", verbose=False)
    assert result.states == {"COMPLETE": 1}, result.states
    rows = pq.read_table(tmp_path / "run" / "trials.parquet").to_pylist()
    assert len(rows) == 1 and rows[0]["epochs"] == 1


def test_a_run_directory_is_never_reused_and_resume_needs_one(tmp_path):
    from search import resume_search, run_search
    from spaces import load_spec, shipped_spaces
    from trainables.errors import InputError

    spec = load_spec(shipped_spaces()["default"])
    (tmp_path / "spec.yaml").write_text("kept\n")
    with pytest.raises(InputError, match="already holds a run"):
        run_search(spec, out=tmp_path)
    assert (tmp_path / "spec.yaml").read_text() == "kept\n"  # nothing overwritten
    with pytest.raises(InputError, match=r"holds no run \(spec.yaml is missing\)"):
        resume_search(tmp_path / "empty")


def test_run_logs_the_checks_notes_first(tmp_path, caplog):
    from search import run_search
    from spaces import parse_spec
    from trainables.errors import InputError

    ratio = {"type": "float", "low": 0.1, "high": 0.9}  # 13 masks of 16 tokens, 20 trials
    spec = parse_spec({"params": {"mask/ratio": ratio}}, source="s.yaml")
    [note] = spec.notes
    (tmp_path / "spec.yaml").write_text("kept\n")
    with caplog.at_level("WARNING", logger="search.run"), pytest.raises(InputError):
        run_search(spec, out=tmp_path)  # refused: the note came first all the same
    assert [r.getMessage() for r in caplog.records] == [f"note: {note}"]


def test_resume_logs_the_notes_of_an_edited_space_only(tmp_path, caplog):
    from analysis.rundir import RunDir
    from search import resume_search
    from spaces import parse_spec
    from trainables.errors import InputError

    ratio = {"type": "float", "low": 0.1, "high": 0.9}  # 13 masks of 16 tokens
    spec = parse_spec({"budget": {"trials": 10}, "params": {"mask/ratio": ratio}}, source="s.yaml")
    assert spec.notes == ()  # fewer trials than masks
    RunDir(tmp_path).write_spec(spec)
    more = parse_spec({"budget": {"trials": 20}, "params": {"mask/ratio": ratio}}, source="e.yaml")
    [note] = more.notes
    with caplog.at_level("WARNING", logger="search.run"):
        with pytest.raises(InputError, match="its study is missing"):
            resume_search(tmp_path)  # the run's own space: its notes were logged at the start
        assert caplog.records == []
        with pytest.raises(InputError, match="its study is missing"):
            resume_search(tmp_path, spec=more)
    assert [r.getMessage() for r in caplog.records] == [f"note: {note}"]
    assert note.startswith("e.yaml params/mask/ratio: ")  # the edit's, not the run's


def test_a_space_is_taken_as_a_spec_a_path_or_a_mapping(tmp_path):
    from pathlib import Path

    from search.run import as_spec, run_search
    from spaces import SpecError, load_spec

    shipped = load_spec("spaces/default.yaml")
    assert as_spec(shipped) is shipped
    assert as_spec("spaces/default.yaml") == shipped
    assert as_spec(Path("spaces/default.yaml")).study.name == "default"
    assert as_spec({"budget": {"trials": 3}}).budget.trials == 3
    with pytest.raises(SpecError, match=r"<mapping> budget/trials: expected an integer >= 1"):
        as_spec({"budget": {"trials": 0}})
    with pytest.raises(TypeError, match="a space file's path or a mapping, got int"):
        run_search(3, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()
