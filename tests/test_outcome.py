"""One digest of a run, from constructed tables (no Ray, no study needed for most of it)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from analysis.outcome import digest


def make_run(tmp_path, direction="maximize"):
    spec = {
        "study": {"name": "s", "objective": {"metric": "acc", "direction": direction}},
        "params": {
            "mask/ratio": {"type": "float", "low": 0.0, "high": 1.0},
            "train/seed": {"type": "fixed", "value": 0},
        },
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    rows = {
        "number": [0, 1, 2, 3],
        "state": ["COMPLETE", "PRUNED", "COMPLETE", "FAIL"],
        "value": [0.5, 0.2, 0.7, None],
        "epochs": [4, 2, 4, 1],
        "fail_reason": [None, None, None, "interrupted: re-run as trial 4"],
        "resumed_from": [None, None, None, None],
        "param/mask/ratio": [0.1, 0.5, 0.9, 0.3],
        "param/train/seed": [0, 0, 0, 0],
        "final/trial_time_s": [4.0, 2.0, 4.0, 1.0],
    }
    pq.write_table(pa.table(rows), tmp_path / "trials.parquet")
    curves = {
        "trial": [0, 0, 2, 2],
        "epoch": [1, 2, 1, 2],
        "time_s": [1.0, 3.0, 2.0, 5.0],
        "probe_time_s": [0.5, 0.5, 0.5, 0.5],
    }
    pq.write_table(pa.table(curves), tmp_path / "curves.parquet")
    (tmp_path / "baseline.json").write_text(json.dumps({"acc": 0.1}))
    return tmp_path


@pytest.mark.parametrize(("direction", "order"), [("maximize", [2, 0]), ("minimize", [0, 2])])
def test_ranking_best_settings_and_baseline(tmp_path, direction, order):
    o = digest(make_run(tmp_path, direction))
    assert [r["number"] for r in o.ranked] == order  # completed trials only, by direction
    assert o.best["number"] == order[0] and o.metric == "acc"
    assert o.baselines == {"random_init": {"acc": 0.1}}  # the older, flat record
    assert o.baseline_values("acc") == {"random-init encoder": 0.1}
    ratio = {2: 0.9, 0: 0.1}[order[0]]
    assert o.best_settings() == {"mask/ratio": ratio}  # the sampled ones
    assert o.best_settings(sampled_only=False) == {"mask/ratio": ratio, "train/seed": 0}


def test_what_was_spent(tmp_path):
    spent = digest(make_run(tmp_path)).spent
    assert spent.trials == 3  # the interrupted trial is not counted against the budget
    assert spent.states == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 1}
    assert (spent.trial_epochs, spent.full_epochs) == (11, 3 * 30)
    assert spent.saved == pytest.approx(1 - 11 / 90)
    assert (spent.trial_time_s, spent.tune_time_s, spent.probe_time_s) == (11.0, 8.0, 2.0)
