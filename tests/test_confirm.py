"""Confirm: choosing the configurations (analysis.confirm) and the long runs (search.confirm)."""

from __future__ import annotations

import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from analysis.confirm import Candidate, ConfirmPlan, choose, config_key


def _trial(number, value, x, repeat=None, state=TrialState.COMPLETE):
    params = {"x": x} if repeat is None else {"x": x, "repeat": repeat}
    dists = {"x": FloatDistribution(0, 1)}
    if repeat is not None:
        dists["repeat"] = IntDistribution(0, 5)
    t = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions=dists,
    )
    t.number = number
    return t


def test_the_best_and_controls_spread_down_to_the_worst():
    trials = [_trial(i, v, v) for i, v in enumerate([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6])]
    trials.append(_trial(8, None, 0.95, state=TrialState.PRUNED))  # no short-run value
    picked = choose(trials, maximize=True, top=3, controls=2)
    assert [(c.rank, c.role, c.short, c.trials) for c in picked] == [
        (1, "top", 0.9, (1,)),
        (2, "top", 0.8, (5,)),
        (3, "top", 0.7, (3,)),
        (6, "control", 0.3, (4,)),  # the rest is ranks 4..8: its middle and its end
        (8, "control", 0.1, (2,)),
    ]
    low = choose(trials, maximize=False, top=1, controls=1)
    assert [(c.rank, c.short) for c in low] == [(1, 0.1), (8, 0.9)]
    # more asked for than there are: each configuration once
    assert len(choose(trials[:3], maximize=True, top=2, controls=5)) == 3


def test_repeats_of_one_configuration_are_one_candidate_scored_by_their_mean():
    trials = [_trial(0, 0.6, 0.5, 0), _trial(1, 0.8, 0.5, 1), _trial(2, 0.65, 0.2, 0)]
    [a, b] = choose(trials, maximize=True, top=2, controls=0)
    assert a.params == {"x": 0.5} and a.trials == (0, 1) and a.short == pytest.approx(0.7)
    assert a.key == config_key({"x": 0.5, "repeat": 1}) and b.short == 0.65


def test_the_plan_round_trips_and_its_tag_names_budget_and_overrides():
    cand = Candidate(config_key({"x": 0.1}), {"x": 0.1}, (3, 4), 0.5, 1, "top")
    plan = ConfirmPlan(top=1, controls=0, epochs=40, seeds=2, candidates=(cand,))
    again = ConfirmPlan.from_json(plan.to_json())
    assert again == plan and again.tag == "e40"
    other = ConfirmPlan(top=1, controls=0, epochs=40, seeds=2, sets=(("data.options.count", 800),))
    assert (
        other.tag.startswith("e40-")
        and other.tag
        != ConfirmPlan(
            top=1, controls=0, epochs=40, seeds=2, sets=(("data.options.count", 900),)
        ).tag
    )


def _spec(**budget):
    from spaces import parse_spec

    return parse_spec(
        {
            "study": {
                "name": "cf",
                "objective": {"metric": "knn_top1"},
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 4, "epochs": 2, "concurrency": 2, "noise_seeds": 0, **budget},
            "aug": {"resized_crop": {"min_scale": 0.7}},
            "probe": {"names": ["knn", "rankme"]},
            "train": {"seed": 5},
            "params": {"mask/ratio": {"type": "float", "low": 0.2, "high": 0.8}},
        },
        source="test",
    )


def test_the_long_runs_seeds_start_at_the_configurations_own_a_fixed_parameter_included():
    from search.confirm import _cases
    from spaces import parse_spec

    cand = Candidate(config_key({"mask/ratio": 0.5}), {"mask/ratio": 0.5}, (0,), 0.5, 1, "top")
    plan = ConfirmPlan(top=1, controls=0, epochs=4, seeds=2, candidates=(cand,))
    assert [s for _, s in _cases(_spec(), plan)] == [5, 6]  # train: {seed: 5}
    fixed = _spec().to_dict()
    fixed["params"]["train/seed"] = {"type": "fixed", "value": 9}
    assert [s for _, s in _cases(parse_spec(fixed, source="t"), plan)] == [9, 10]
    del fixed["train"], fixed["params"]["train/seed"]
    assert [s for _, s in _cases(parse_spec(fixed, source="t"), plan)] == [0, 1]  # the default


def test_the_long_runs_schedules_span_their_own_budget(tmp_path):
    from analysis.rundir import RunDir
    from search.confirm import _case_config, _long_spec
    from spaces import parse_spec

    cand = Candidate(config_key({"mask/ratio": 0.5}), {"mask/ratio": 0.5}, (0,), 0.5, 1, "top")
    for horizon in (None, 20, 40):  # the search's trials (20 epochs): whole, or a run's start
        data = _spec(epochs=20).to_dict()
        if horizon is not None:
            data["train"]["horizon"] = horizon
        run = RunDir(tmp_path / f"h{horizon}")
        run.path.mkdir()
        run.write_spec(parse_spec(data, source="t"))
        for epochs, sets, expected in (
            (30, (), 30),
            (100, (), 100),
            (30, (("train.horizon", 90),), 90),
        ):
            plan = ConfirmPlan(top=1, controls=0, epochs=epochs, seeds=1, sets=sets)
            config = _case_config(_long_spec(run, plan), cand, 6)
            assert config["train"] == {"seed": 6, "horizon": expected, "epochs": epochs}


def _long_rows(run_dir, experiment):
    from analysis.results import result_rows

    return [result_rows(str(p)) for p in sorted((run_dir / experiment).glob("trial_*/result.json"))]


@pytest.mark.slow
def test_confirm_re_trains_the_best_and_a_control_and_never_twice(ray_local, tmp_path):
    import json

    import optuna
    import pyarrow.parquet as pq

    from analysis.ablation import CONFIRM_FIXED, confirmation
    from analysis.confirm import confirm_study_name
    from analysis.rundir import RunDir
    from search import run_search
    from search.confirm import run_confirm

    run_dir = tmp_path / "run"
    run_search(_spec(), out=run_dir, verbose=False)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    search = optuna.load_study(study_name="cf", storage=storage)
    ranked = sorted(search.trials, key=lambda t: -t.value)

    plan = run_confirm(str(run_dir), top=1, controls=1, epochs=3, seeds=2)
    assert [(c.rank, c.role, c.trials) for c in plan.candidates] == [
        (1, "top", (ranked[0].number,)),
        (4, "control", (ranked[3].number,)),  # the worst
    ]
    long = optuna.load_study(study_name=confirm_study_name("cf"), storage=storage)
    assert long.user_attrs["search_study"] == "cf"
    assert len(long.trials) == 4 and {t.state for t in long.trials} == {TrialState.COMPLETE}
    rows = _long_rows(run_dir, "confirm")
    assert len(rows) == 4
    by_case = {}
    for r in rows:
        case = r[-1]["config"]["confirm_case"]
        config = case["config"]
        assert r[-1]["epoch"] == 3 and config["train"]["epochs"] == 3  # the long budget
        assert r[0]["epoch"] == 1  # its search trial squeezed its schedules: began none
        assert config["train"]["seed"] == case["seed"] and case["seed"] in (5, 6)
        by_case[(case["key"], case["seed"])] = r[-1]
        # the configuration is the search trial's own
        trial = next(t for t in search.trials if json.loads(case["key"]) == t.params)
        assert config["mask"]["ratio"] == trial.params["mask/ratio"]
    for t in long.trials:  # each record is its log's last epoch
        logged = by_case[(t.user_attrs["config_key"], t.user_attrs["seed"])]
        assert t.value == logged["knn_top1"]
        assert t.user_attrs["metrics"]["rankme"] == logged["rankme"]

    table = pq.read_table(run_dir / "confirm.parquet")
    assert table.schema.names[: len(CONFIRM_FIXED)] == CONFIRM_FIXED.names
    assert {"param/mask/ratio", "metric/knn_top1", "metric/rankme"} <= set(table.schema.names)
    assert table.num_rows == 4 and set(table.column("epochs").to_pylist()) == {3}
    md = (run_dir / "ablation.md").read_text()
    assert md.count("\n") == 2 + 2 and " ± " in md
    assert "\\toprule" in (run_dir / "ablation.tex").read_text()
    csv_head = (run_dir / "ablation.csv").read_text().splitlines()[0]
    assert "knn_top1 mean,knn_top1 std,knn_top1 n" in csv_head
    assert "Does the answer hold?" in (run_dir / "report.html").read_text()
    c = confirmation(RunDir(run_dir))
    assert [p.metric for p in c.proxies] == ["rankme"]

    # the same again: nothing to run, no new Tune experiment
    run_confirm(str(run_dir))
    assert len(long.get_trials()) == 4 and not (run_dir / "confirm.1").exists()
    # one more seed: only the two new long runs
    plan = run_confirm(str(run_dir), seeds=3)
    assert plan.experiments == ("confirm", "confirm.1")
    assert len(_long_rows(run_dir, "confirm.1")) == 2
    assert sorted(t.user_attrs["seed"] for t in long.get_trials()) == [5] * 2 + [6] * 2 + [7] * 2


@pytest.mark.slow
def test_a_long_run_a_search_trial_began_continues_from_its_checkpoint(ray_local, tmp_path):
    import torch

    from analysis.rundir import RunDir
    from search import run_search
    from search.confirm import _case_config, _long_spec, run_confirm
    from spaces import parse_spec
    from trainables import Trainer, load_dataset, run_epochs
    from trainables.validate import parse_trial_config

    data = _spec().to_dict()  # 4 trials of 2 epochs, seed 5
    data["train"]["horizon"] = 4  # each the first half of a 4-epoch run
    run_dir = tmp_path / "run"
    run_search(parse_spec(data, source="t"), out=run_dir, verbose=False)
    plan = run_confirm(str(run_dir), top=1, controls=1, epochs=4, seeds=2)
    first = {}
    for rows in _long_rows(run_dir, "confirm"):
        case = rows[-1]["config"]["confirm_case"]
        first[(case["key"], case["seed"])] = (rows[0]["epoch"], rows[-1])
    # the search's seed continues from the trial's epoch 2; the next seed starts afresh
    assert sorted(e for e, _ in first.values()) == [1, 1, 3, 3]
    assert {s for (_, s), (e, _) in first.items() if e == 3} == {5}
    # and it ends where a long run trained from scratch ends
    top = plan.candidates[0]
    config = _case_config(_long_spec(RunDir(run_dir), plan), top, 5)
    config["train"]["threads"] = 1  # as the trial's one CPU
    cfg = parse_trial_config(config)
    threads = torch.get_num_threads()
    try:
        scratch = list(run_epochs(Trainer(cfg, load_dataset(cfg.data))))[-1]
    finally:
        torch.set_num_threads(threads)
    continued = first[(top.key, 5)][1]
    assert continued["epoch"] == scratch["epoch"] == 4
    assert continued["knn_top1"] == scratch["knn_top1"]
    assert continued["loss"] == pytest.approx(scratch["loss"], rel=1e-6)


@pytest.mark.slow
def test_a_kill_during_confirm_continues_each_long_run_from_its_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    import optuna
    import yaml

    from analysis.confirm import confirm_study_name
    from analysis.results import result_rows
    from search.recover import latest_checkpoint

    spec = _spec(concurrency=1).to_dict()
    spec["budget"]["trials"] = 3
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(spec))

    def sslsearch(*args, **kwargs):
        cmd = [sys.executable, "-m", "search", *args]
        return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)

    out = sslsearch("run", "space.yaml", "--out", "run")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    run_dir = tmp_path / "run"
    confirm = ["confirm", "run", "--top", "1", "--controls", "1", "--seeds", "1", "--epochs", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", *confirm],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def logged():  # (case, newest checkpoint's epoch, last logged epoch) per long run
        out = {}
        for path in sorted((run_dir / "confirm").glob("trial_*/result.json")):
            rows = result_rows(str(path))
            if rows:
                case = rows[0]["config"]["confirm_case"]
                found = latest_checkpoint(str(path.parent))
                out[(case["key"], case["seed"])] = (found[1] if found else 0, rows[-1]["epoch"])
        return out

    def checkpointed():  # a long run with a checkpoint at epoch >= 3
        return any(c >= 3 for c, _ in logged().values())

    deadline = time.monotonic() + 400
    while proc.poll() is None and not checkpointed():
        assert time.monotonic() < deadline, "no long run reached epoch 3"
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    before = logged()  # as the kill left them

    out = sslsearch(*confirm)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    storage = f"sqlite:///{run_dir / 'study.db'}"
    long = optuna.load_study(study_name=confirm_study_name("cf"), storage=storage)
    assert [t.state for t in long.trials] == [TrialState.COMPLETE] * 2
    for rows in _long_rows(run_dir, "confirm.1"):
        assert rows
        case = rows[0]["config"]["confirm_case"]
        checkpoint, last = before.get((case["key"], case["seed"]), (0, 0))
        assert last < 8  # a finished one is recorded from its log, never run again
        assert rows[0]["epoch"] == checkpoint + 1  # continued, not restarted
        assert rows[-1]["epoch"] == 8
    assert any(c >= 3 for c, _ in before.values())
    assert any(rows[0]["epoch"] > 1 for rows in _long_rows(run_dir, "confirm.1"))
    for t in long.trials:  # each value is what its final epoch logged
        logs = _long_rows(run_dir, "confirm") + _long_rows(run_dir, "confirm.1")
        finals = [
            rows[-1]["knn_top1"]
            for rows in logs
            if rows
            and rows[-1]["epoch"] == 8
            and rows[0]["config"]["confirm_case"]["key"] == t.user_attrs["config_key"]
        ]
        assert t.value in finals
