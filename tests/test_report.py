"""The report: its YAML snippet, its sections, and the page in a real headless browser."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest
import yaml
from scipy import stats

from analysis.report import best_config_yaml, write_report
from search import run_search
from spaces import SpecError, parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_best_config_yaml_round_trips():
    params = {"mask/ratio": 0.123456789, "loss/weights/mae": 1.0, "mask/strategy": "block"}
    back = yaml.safe_load(best_config_yaml(params))
    assert back == {
        "mask": {"ratio": 0.123457, "strategy": "block"},
        "loss": {"weights": {"mae": 1.0}},
    }


def test_loggers_are_checked_before_anything_runs():
    base = {"params": {"x": {"type": "float", "low": 0, "high": 1}}}
    with pytest.raises(SpecError) as info:
        parse_spec(
            {**base, "study": {"loggers": {"tensorbord": {}, "mlflow": {"uri": "x"}}}},
            source="s.yaml",
            builtin_trainable=False,
        )
    text = str(info.value)
    assert (
        "study/loggers/tensorbord: unknown logger (did you mean 'tensorboard'?); "
        "valid: tensorboard, csv, mlflow, wandb"
    ) in text
    assert "study/loggers/mlflow/uri: unknown option; valid: tracking_uri" in text
    spec = parse_spec(
        {**base, "study": {"loggers": ["tensorboard"]}}, source="s.yaml", builtin_trainable=False
    )
    assert dict(spec.study.loggers) == {"tensorboard": {}}


def sweep_toy(config):
    """A masking-ratio-like sweep: best at 0.6, seed noise, a label-free score that agrees."""
    from ray import tune

    r, seed = config["mask"]["ratio"], config["train"]["seed"]
    for epoch in range(1, config["train"]["epochs"] + 1):
        acc = epoch / 4 * (0.9 - (r - 0.6) ** 2) + 0.01 * seed
        tune.report(
            {"knn_top1": acc, "rankme": 10 * acc + 0.05 * seed, "trial_time_s": epoch * 0.1}
        )


SWEEP = {
    "description": "Which masking ratio? (a toy sweep)",
    "study": {
        "name": "toy_sweep",
        "objective": {"metric": "knn_top1", "direction": "maximize"},
        "sampler": {"name": "grid", "seed": 0, "repeats": 2},
        "pruner": {"name": "none"},
        "loggers": ["tensorboard"],
    },
    "budget": {"trials": 8, "epochs": 4, "concurrency": 2},
    "params": {"mask/ratio": {"type": "grid", "values": [0.2, 0.4, 0.6, 0.8]}},
}


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _browser(*args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--no-first-run", "--disable-extensions", "--hide-scrollbars"]  # fmt: skip
    return subprocess.run(
        [_chromium(), *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _check_in_browser(page: Path, screenshot: Path) -> tuple[str, list[str]]:
    """(the body tag after load, console lines) from a real headless Chromium."""
    dom = _browser("--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    body = re.search(r"<body[^>]*>", dom.stdout)
    shot = _browser("--window-size=1100,2400", f"--screenshot={screenshot}", page.as_uri())
    assert shot.returncode == 0 and screenshot.stat().st_size > 10_000, shot.stderr[-500:]
    return (body.group(0) if body else ""), console


@pytest.mark.slow
def test_report_of_a_sweep_renders_in_a_headless_browser(ray_local, tmp_path):
    if _chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found (.ci/run installs it)")
        pytest.skip("chromium not installed")
    spec = parse_spec(SWEEP, source="toy.yaml", builtin_trainable=False)
    run = tmp_path / "run"
    result = run_search(spec, out=run, trainable=sweep_toy, verbose=False)
    report = run / "report.html"
    assert report.exists()  # written by the run itself
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)=["']?https?:""", text)  # nothing from the network
    figures = sorted(p.name for p in (run / "figures").glob("*.png"))
    assert figures == [
        "fidelity.png",
        "importance.png",
        "learning_curves.png",
        "parallel_coordinates.png",
        "sweep_mask_ratio.png",
    ]
    assert text.count('src="data:image/png;base64,') == len(figures)
    # the answer: ratio 0.6 has the best mean over its 2 seeds, with its interval
    acc = 0.9 + 0.01 * np.array([0, 1])
    low, high = stats.t.interval(0.95, 1, acc.mean(), stats.sem(acc))
    assert f"mask/ratio = 0.6 gives the best mean knn_top1, {acc.mean():.4g}" in text
    assert f"(95 % interval {low:.4g} to {high:.4g}, 2 seeds)" in text
    # the sweep's table: one row per ratio, no empty group column when nothing groups it
    assert "<thead><tr><th>mask/ratio</th><th>mean knn_top1</th>" in text
    snippet = re.search(r"<pre>(.*?)</pre>", text, re.S).group(1)
    assert yaml.safe_load(snippet) == {"mask": {"ratio": 0.6}}
    assert result.best_params["mask/ratio"] == 0.6
    assert "Label-free vs labelled scores" in text  # rankme vs knn_top1 agree perfectly
    assert "0 trial-epochs" not in text and "32 trial-epochs of 32 without pruning" in text
    # TensorBoard event files from Tune's own logger callback
    assert list((run / "tune").glob("trial_*/events.out.tfevents.*"))

    body, console = _check_in_browser(report, tmp_path / "report.png")
    assert 'data-figures="5/5"' in body, body
    assert "data-errors" not in body
    assert console == []
    if os.environ.get("SSLSEARCH_SHOTS"):  # keep the screenshot to look at
        shutil.copy(tmp_path / "report.png", os.environ["SSLSEARCH_SHOTS"])


@pytest.mark.slow
def test_the_browser_check_catches_a_broken_page(tmp_path):
    if _chromium() is None:
        pytest.skip("chromium not installed")
    page = tmp_path / "bad.html"
    from analysis.report import _page

    page.write_text(
        _page("bad", '<img src="data:image/png;base64,AAAA"><script>nope();</script>', 1)
    )
    body, console = _check_in_browser(page, tmp_path / "bad.png")
    assert 'data-figures="0/1"' in body
    assert "nope is not defined" in body  # recorded by the page's error handler
    assert any("nope is not defined" in line for line in console)


def test_report_of_a_multi_objective_study_without_ray(tmp_path):
    """A study filled through Optuna alone: Pareto front from Optuna, report from the tables."""
    spec = parse_spec(
        {
            "study": {
                "name": "mo",
                "objective": [
                    {"metric": "knn_top1", "direction": "maximize"},
                    {"metric": "trial_time_s", "direction": "minimize"},
                ],
                "sampler": {"name": "random", "seed": 0},
            },
            "budget": {"trials": 12, "epochs": 3},
            "params": {
                "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
                "optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            },
        },
        source="mo.yaml",
        builtin_trainable=False,
    )
    run = tmp_path / "run"
    run.mkdir()
    storage = f"sqlite:///{run / 'study.db'}"
    (run / "spec.yaml").write_text(
        yaml.safe_dump({**spec.to_dict(), "study": {**spec.to_dict()["study"], "storage": storage}})
    )
    (run / "run.json").write_text(json.dumps({"builtin_trainable": False}))
    study = optuna.create_study(
        study_name="mo", storage=storage, directions=["maximize", "minimize"],
        sampler=optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip
    for _ in range(12):
        t = study.ask()
        r = t.suggest_float("mask/ratio", 0.1, 0.9)
        t.suggest_float("optim/lr", 1e-4, 1e-2, log=True)
        study.tell(t, [1 - (r - 0.5) ** 2, 10 * (1 - r)])
    path = write_report(run)
    text = path.read_text(encoding="utf-8")
    front = sorted(t.number for t in study.best_trials)
    assert f"{len(front)} trials are Pareto-optimal for knn_top1 vs trial_time_s" in text
    assert (run / "figures" / "pareto.png").exists()
    table = text[text.index("<h2>Pareto front</h2>") :]
    rows = re.findall(r"<tr><td>(\d+)</td>", table.split("</table>")[0])
    assert sorted(int(n) for n in rows) == front
    trials = pq.read_table(run / "trials.parquet").to_pylist()
    assert len(trials) == 12 and all(not math.isnan(r["value"]) for r in trials)
