"""analysis.ablation: confirm.parquet's schema and the ablation table's three formats."""

from __future__ import annotations

import csv
import io

import pytest

from analysis.ablation import (
    CONFIRM_FIXED,
    ablation_table,
    confirm_table,
    csv_table,
    latex_table,
    markdown_table,
)
from analysis.confirm import Candidate, ConfirmPlan, LongRun
from analysis.holds import judge

METRICS = {"knn_top1": {"labels": True, "headline": True, "direction": "maximize"}}


def _plan_runs():
    cands = (
        Candidate('{"a_b": 0.1}', {"a_b": 0.1, "kind": "x"}, (4,), 0.9, 1, "top"),
        Candidate('{"a_b": 0.5}', {"a_b": 0.5, "kind": "y"}, (2,), 0.7, 3, "control"),
    )
    plan = ConfirmPlan(top=1, controls=1, epochs=12, seeds=2, candidates=cands)
    runs = [
        LongRun(cands[1].key, 1, "COMPLETE", {"knn_top1": 0.6, "loss": 2.0}),
        LongRun(cands[0].key, 1, "COMPLETE", {"knn_top1": 0.8, "loss": 1.0}),
        LongRun(cands[0].key, 0, "COMPLETE", {"knn_top1": 0.9, "loss": 1.5}),
        LongRun(cands[1].key, 0, "FAIL", {}, "loss diverged"),
    ]
    return plan, runs


def test_confirm_table_has_the_declared_schema_in_short_run_order():
    plan, runs = _plan_runs()
    table = confirm_table(plan, runs, "knn_top1")
    assert table.schema.names[: len(CONFIRM_FIXED)] == CONFIRM_FIXED.names
    assert [table.schema.field(f.name).type for f in CONFIRM_FIXED] == CONFIRM_FIXED.types
    assert table.schema.metadata[b"sslsearch.schema"] == b"confirm/1"
    rows = table.to_pylist()
    assert [(r["rank"], r["seed"], r["state"], r["value"]) for r in rows] == [
        (1, 0, "COMPLETE", 0.9),
        (1, 1, "COMPLETE", 0.8),
        (3, 0, "FAIL", None),
        (3, 1, "COMPLETE", 0.6),
    ]
    assert rows[2]["fail_reason"] == "loss diverged" and rows[0]["epochs"] == 12
    assert rows[0]["param/a_b"] == 0.1 and rows[3]["param/kind"] == "y"
    assert rows[0]["metric/loss"] == 1.5 and rows[2]["metric/loss"] is None
    assert rows[0]["plan"] == plan.tag == "e12"


def test_the_ablation_table_in_markdown_latex_and_csv():
    plan, runs = _plan_runs()
    c = judge(plan, runs, metric="knn_top1", direction="maximize", metrics=METRICS)
    header, rows = ablation_table(c)
    assert header == ["rank", "role", "a_b", "kind", "short knn_top1", "knn_top1", "loss"]
    (m1, s1, n1), (m2, s2, n2) = rows[0][5], rows[1][5]
    assert (m1, n1, m2, s2, n2) == (pytest.approx(0.85), 2, 0.6, 0.0, 1)
    assert s1 == pytest.approx(0.0707107, rel=1e-5)  # the sample std of 0.9 and 0.8
    md = markdown_table(header, rows).splitlines()
    assert md[0] == "| rank | role | a_b | kind | short knn_top1 | knn_top1 | loss |"
    assert md[2] == "| 1 | top | 0.1 | x | 0.9 | 0.8500 ± 0.0707 (2) | 1.2500 ± 0.3536 (2) |"
    tex = latex_table(header, rows, "50% of a_b & more")
    assert "\\caption{50\\% of a\\_b \\& more}" in tex
    assert "short knn\\_top1" in tex and "$0.8500 \\pm 0.0707$" in tex
    assert tex.count("\\\\") == 3 and "\\bottomrule" in tex
    table = list(csv.reader(io.StringIO(csv_table(header, rows))))
    assert table[0] == [
        "rank", "role", "a_b", "kind", "short knn_top1",
        "knn_top1 mean", "knn_top1 std", "knn_top1 n", "loss mean", "loss std", "loss n",
    ]  # fmt: skip
    assert table[2][:5] == ["3", "control", "0.5", "y", "0.7"] and table[2][5:8] == [
        "0.6",
        "0.0",
        "1",
    ]
