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


def make_study_run(tmp_path, *, pruned_after=10, completed_value=None, baselines=None):
    """A run whose pruner stopped every strong-``j`` trial at epoch ``pruned_after``:
    acc = 0.1 e/18 + 0.5 - 0.4 j + 0.02 n. Tables written from the study as a run would."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = {
        "study": {"name": "p", "objective": {"metric": "acc", "direction": "maximize"}},
        "budget": {"trials": 30, "epochs": 18},
        "params": {
            "j": {"type": "float", "low": 0.0, "high": 1.0},
            "n": {"type": "float", "low": 0.0, "high": 1.0},
        },
    }
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    study = optuna.create_study(
        study_name="p",
        storage=f"sqlite:///{tmp_path / 'study.db'}",
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    trials, curves = [], []
    for _ in range(30):
        t = study.ask()
        j, n = t.suggest_float("j", 0, 1), t.suggest_float("n", 0, 1)
        last = pruned_after if j > 0.3 else 18
        for e in range(1, last + 1):
            acc = 0.1 * e / 18 + 0.5 - 0.4 * j + 0.02 * n
            if completed_value is not None and last == 18:
                acc = completed_value
            curves.append({"trial": t.number, "epoch": e, "time_s": float(e), "acc": acc})
        state = "COMPLETE" if last == 18 else "PRUNED"
        study.tell(t, acc if last == 18 else None, state=getattr(optuna.trial.TrialState, state))
        trials.append(
            {
                "number": t.number,
                "state": state,
                "value": acc if last == 18 else None,
                "epochs": last,
                "fail_reason": None,
                "resumed_from": None,
                "param/j": j,
                "param/n": n,
            }
        )
    pq.write_table(pa.Table.from_pylist(trials), tmp_path / "trials.parquet")
    pq.write_table(pa.Table.from_pylist(curves), tmp_path / "curves.parquet")
    if baselines:
        (tmp_path / "baseline.json").write_text(json.dumps(baselines))
    return tmp_path


def test_importance_and_effects_rest_on_every_trial_pruned_ones_included(tmp_path):
    o = digest(make_study_run(tmp_path))
    pruned = o.spent.states["PRUNED"]
    assert pruned >= 15
    assert (o.evidence.epoch, o.evidence.n, o.evidence.pruned) == (10, 30, pruned)
    assert all(imp.n_trials == 30 for imp in o.importances)
    assert [imp.top(1) for imp in o.importances] == [["j"], ["j"]]
    j = next(e for e in o.effects if e.param == "j")
    assert j.determined and j.better == 0.0 and j.size == pytest.approx(-0.4, abs=1e-6)
    answer = " ".join(o.answer())
    assert "30 of 30 trials, acc at epoch 10" in answer
    assert "lower `j` is better: -0.4 acc from 0 to 1" in answer


def test_warnings_name_saturation_few_completions_and_close_baselines(tmp_path):
    o = digest(
        make_study_run(
            tmp_path,
            pruned_after=4,
            completed_value=1.0,
            baselines={"random_init": {"acc": 0.95}, "raw_input": {"acc": 1.0}},
        )
    )
    n = len(o.ranked)
    text = "\n".join(o.warnings())
    assert f"{n} of {n} completed trials tie at the best acc, 1: the metric cannot" in text
    assert "The random-init encoder baseline scores 0.95, within 0.05 of the best" in text
    assert "The raw pixels baseline scores 1, as good as or better than the best" in text
    assert ("trial(s) completed: the best trial rests on few" in text) == (n < 5)
    (tmp_path / "h").mkdir()
    healthy = digest(make_study_run(tmp_path / "h", baselines={"random_init": {"acc": 0.1}}))
    assert healthy.warnings() == []


def add_noise_study(run_dir, incumbent, values, *, failed=0):
    """Re-runs of trial ``incumbent`` in ``<study>.noise``, as search.noise records them."""
    import optuna

    from analysis.rundir import RunDir

    noise = RunDir(run_dir).side_study("noise", direction="maximize")
    for seed, value in enumerate(values, start=1):
        noise.add_trial(
            optuna.trial.create_trial(value=value, user_attrs={"noise_of": incumbent, "seed": seed})
        )
    for k in range(failed):
        noise.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.FAIL,
                user_attrs={"noise_of": incumbent, "seed": len(values) + 1 + k},
            )
        )


def test_the_noise_floor_decides_ties_and_closeness(tmp_path):
    run = make_study_run(tmp_path, baselines={"random_init": {"acc": 0.5}})
    o = digest(run)
    assert (
        o.noise is None and o.band is None and [r["number"] for r in o.tied] == [o.best["number"]]
    )
    best = o.best["value"]
    # the best configuration re-run: its own value and two more, sd 0.02 -> band 0.0554
    add_noise_study(run, o.best["number"], [best - 0.02, best + 0.02], failed=1)
    o = digest(run)
    assert o.noise.values == (best, best - 0.02, best + 0.02) and o.noise.seeds == (1, 2)
    assert o.noise.sd == pytest.approx(0.02)
    assert o.band == pytest.approx(1.96 * 2**0.5 * 0.02)
    within = [r["number"] for r in o.ranked if best - r["value"] <= o.band]
    assert [r["number"] for r in o.tied] == within and len(within) >= 2
    text = "\n".join(o.warnings())
    assert "1 re-run(s) of the best configuration failed" in text
    assert "baseline" not in text  # 0.5 is more than the band (0.055) below the best

    # a noisier configuration makes the same baseline "close"
    (tmp_path / "n").mkdir()
    noisy = make_study_run(tmp_path / "n", baselines={"random_init": {"acc": 0.5}})
    b = digest(noisy).best
    add_noise_study(noisy, b["number"], [b["value"] - 0.1, b["value"] + 0.1])
    o = digest(noisy)
    assert o.best["value"] - 0.5 < o.band
    assert "within the noise band (0.277) of the best trial" in "\n".join(o.warnings())
    assert f"{len(o.tied)} of {len(o.ranked)} completed trials are within the noise band" in (
        "\n".join(o.warnings())
    )


def test_runs_of_one_configuration_on_other_seeds_tying_are_not_a_saturated_metric(tmp_path):
    run = make_study_run(tmp_path, pruned_after=4, completed_value=1.0)
    rows = [
        {**r, "seed": 0, "param/train/seed": 0}
        for r in pq.read_table(run / "trials.parquet").to_pylist()
    ]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    assert len(done) >= 6
    for i, r in enumerate(done):  # two configurations, each sampled again and again
        r["param/j"], r["param/n"], r["seed"] = 0.1 * (i % 2), 0.5, i
        r["param/train/seed"] = i  # a fixed train/seed records each repeat's seed
    pq.write_table(pa.Table.from_pylist(rows), run / "trials.parquet")
    o = digest(run)
    assert "cannot tell" not in "\n".join(o.warnings())
    assert o.repeated == len(done) - 2
    from analysis.summary import format_summary

    summary = format_summary(run)
    assert f"; {len(done) - 2} ran a configuration already run (column seed)" in summary
    mine = [r for r in done if r["param/j"] == o.best["param/j"]]  # the best's other seeds
    seeds = ", ".join(str(r["seed"]) for r in sorted(mine, key=lambda r: r["number"]))
    assert f"its configuration completed {len(mine)} times (seeds {seeds}): acc mean 1" in summary
    for i, r in enumerate(done):  # three: now the metric ties what differs
        r["param/j"] = 0.1 * (i % 3)
    pq.write_table(pa.Table.from_pylist(rows), run / "trials.parquet")
    assert "3 of 3 completed configurations tie at the best acc, 1: the metric cannot" in (
        "\n".join(digest(run).warnings())
    )


def test_a_baseline_the_best_trial_beats_but_its_configurations_mean_does_not(tmp_path):
    run = make_study_run(tmp_path, pruned_after=4, completed_value=1.0)
    rows = pq.read_table(run / "trials.parquet").to_pylist()
    done = [r for r in rows if r["state"] == "COMPLETE"]
    for i, r in enumerate(done):  # the best configuration: one lucky seed, the rest lower
        r["param/j"], r["param/n"], r["seed"] = 0.1, 0.5, i
        r["value"] = 1.0 if i == 0 else 0.6
    pq.write_table(pa.Table.from_pylist(rows), run / "trials.parquet")
    mean = (1.0 + 0.6 * (len(done) - 1)) / len(done)
    baselines = {"raw_input": {"acc": 0.85}, "random_init": {"acc": round(mean - 0.05, 3)}}
    (run / "baseline.json").write_text(json.dumps(baselines))
    text = "\n".join(digest(run).warnings())
    assert "the best trial (" not in text  # 1.0 beats both by more than a tenth
    assert (
        f"The raw pixels baseline scores 0.85, as good as or better than the mean of the "
        f"best trial's configuration over its {len(done)} seeds ({mean:.4g}): the search has "
        "not beaten it." in text
    )
    assert f"random-init encoder baseline scores {mean - 0.05:.4g}, within 0.05 of the mean" in text
    (run / "baseline.json").write_text(json.dumps({"raw_input": {"acc": 0.5}}))
    assert "baseline" not in "\n".join(digest(run).warnings())  # 0.5 is beaten clearly


def test_a_best_within_noise_of_the_ceiling_is_saturated(tmp_path):
    run = make_study_run(tmp_path)
    metrics = {"acc": {"probe": "x", "direction": "maximize", "labels": True, "ceiling": 0.7}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    o = digest(run)
    assert o.ceiling == 0.7 and 0.6 < o.best["value"] < 0.7
    assert "ceiling" not in "\n".join(o.warnings())  # no noise measured: 0.6x is not 0.7
    add_noise_study(run, o.best["number"], [o.best["value"] + 0.05, o.best["value"] - 0.05])
    text = "\n".join(digest(run).warnings())
    assert (
        "is within the noise band (0.139) of its ceiling, 0.7: the metric is saturated"
        " (or too noisy)" in text
    )
