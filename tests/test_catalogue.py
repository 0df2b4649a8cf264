"""The torch-free catalogue: the same facts as the registries, and no torch to read it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from trainables.catalogue import CATALOGUE_FILE, KINDS, live, shipped


def test_the_snapshot_equals_the_registries():
    # fails after a registry change until `python -m trainables.catalogue` is run
    assert shipped().to_json() == live().to_json(), (
        f"{CATALOGUE_FILE.name} is out of date: run `python -m trainables.catalogue`"
    )


def test_every_registry_kind_is_in_the_snapshot():
    data = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    assert set(data) == set(KINDS)
    assert all(data[kind]["entries"] for kind in KINDS)


def test_reading_it_and_checking_a_space_import_neither_torch_nor_ray():
    code = (
        "import sys; from spaces import load_spec, shipped_spaces; "
        "[load_spec(p) for p in shipped_spaces().values()]; "
        "print(sorted(m for m in ('torch', 'ray', 'timm', 'kornia') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_carry_their_direction_and_whether_they_need_labels():
    metrics = shipped().metrics()
    assert metrics["knn_top1"] == {
        "probe": "knn",
        "direction": "maximize",
        "labels": True,
        "headline": True,
        "ceiling": 1.0,
    }
    assert metrics["uniformity"]["direction"] == "minimize" and not metrics["uniformity"]["labels"]
    assert metrics["alpha_req_alpha"]["direction"] is None
    # accuracies have a ceiling; scores without a best value do not
    assert metrics["linear_top1"]["ceiling"] == 1.0 and metrics["rankme"]["ceiling"] is None


def test_a_ceiling_for_a_metric_the_probe_does_not_report_is_refused():
    from trainables.probes import register_probe

    with pytest.raises(ValueError, match="ceilings for unreported metrics"):
        register_probe("typo", metrics={"acc": "maximize"}, needs_labels=True, ceilings={"ac": 1})
