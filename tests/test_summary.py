"""The console summary of a run directory (constructed tables, no Ray)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from analysis import format_summary


def make_run(tmp_path, objective):
    spec = {"study": {"name": "s", "objective": {"metric": objective, "direction": "maximize"}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    accs, ranks = [0.5, 0.8, 0.7, 0.6], [4.0, 3.0, 9.0, 5.0]
    rows = {
        "number": [0, 1, 2, 3],
        "state": ["COMPLETE"] * 4,
        "value": ranks if objective == "rankme" else accs,
        "epochs": [3] * 4,
        "fail_reason": [None] * 4,
        "param/mask/ratio": [0.1, 0.5, 0.7, 0.9],
        "final/knn_top1": accs,
        "final/rankme": ranks,
    }
    pq.write_table(pa.table(rows), tmp_path / "trials.parquet")
    curves = {
        "trial": [0, 0, 1],
        "epoch": [1, 2, 1],
        "time_s": [1.0, 2.0, 2.0],
        "probe_time_s": [0.1, 0.1, 0.2],
    }
    pq.write_table(pa.table(curves), tmp_path / "curves.parquet")
    baselines = {"random_init": {"knn_top1": 0.3}, "raw_input": {"knn_top1": 0.9}}
    (tmp_path / "baseline.json").write_text(json.dumps(baselines))
    return tmp_path


def test_summary_names_best_trial_baseline_agreement_and_cost(tmp_path):
    text = format_summary(make_run(tmp_path, "knn_top1"))
    assert "Best trial 1: knn_top1 = 0.8" in text
    assert "Baseline, random-init encoder: knn_top1 = 0.3 (best trial +0.5000)" in text
    assert "Baseline, raw pixels: knn_top1 = 0.9 (best trial -0.1000)" in text
    # ranks of accuracy 1,4,3,2 vs rankme 2,1,4,3: sum d^2 = 12, rho = 1 - 72/60
    assert "rankme vs knn_top1: Spearman -0.20 over 4 trials" in text
    assert "selecting by rankme picks trial 2 (knn_top1 0.7000, 0.1000 below the best)" in text
    assert "probes took 0 s (10.0 % of trial time)" in text
    assert "is label-free" not in text


def test_label_free_objective_says_how_far_from_the_labelled_choice(tmp_path):
    text = format_summary(make_run(tmp_path, "rankme"))
    assert "The objective rankme is label-free: its best trial is 0.1000 knn_top1 below" in text
