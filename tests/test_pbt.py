"""Tune's PBT from the spec: augmentation strengths mutated, trials restored from donors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import run_search
from search.pruning import pbt_mutations
from spaces import SpecError, parse_spec


def grow(config):
    """Score = the sum of the strengths applied so far, carried in the checkpoint.

    Every row it reports is appended by the trial itself to a file in the folder
    ``config["log"]["rows"]`` (the test's own: a folder shared by test sessions was
    emptied by a concurrent one). Tune's own result.json is no record of them: when
    PBT restarts a trial from a checkpoint, Tune's JSON logger copies the trial's
    result.json back from its storage copy, which can lag, and the rows in between
    are lost (seen once in CI)."""
    from ray import tune

    log = Path(config["log"]["rows"]) / f"{tune.get_context().get_trial_id()}.jsonl"

    total, epoch, restored = 0.0, 0, 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            state = json.load(f)
        total, epoch, restored = state["total"], state["epoch"], 1
    strength = config["aug"]["color_jitter"]["strength"]
    while epoch < config["train"]["epochs"]:
        epoch += 1
        total += strength
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "state.json"), "w") as f:
                json.dump({"total": total, "epoch": epoch}, f)
            row = {"score": total, "epoch": epoch, "strength": strength, "restored": restored}
            with log.open("a") as f:
                f.write(json.dumps(row) + "\n")
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))
        restored = 0


SPACE = {
    "study": {
        "name": "pbt",
        "objective": {"metric": "score", "direction": "maximize"},
        "sampler": {"name": "random", "seed": 3},
        "scheduler": {"name": "pbt", "perturbation_interval": 2, "quantile_fraction": 0.5},
    },
    "budget": {"trials": 4, "epochs": 8, "concurrency": 4, "resources": {"cpu": 0.5}},
    "params": {
        "aug/color_jitter/strength": {"type": "float", "low": 0.0, "high": 1.0},
        "optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    },
}


def test_mutations_follow_the_declared_distributions():
    spec = parse_spec(SPACE, source="t", builtin_trainable=False)
    mutations = pbt_mutations(spec)
    assert list(mutations) == ["aug"]  # by default only the aug/ parameters mutate
    domain = mutations["aug"]["color_jitter"]["strength"]
    assert (domain.lower, domain.upper) == (0.0, 1.0)
    explicit = {
        **SPACE,
        "study": {**SPACE["study"], "scheduler": {"name": "pbt", "mutate": ["optim/lr"]}},
    }
    lr = pbt_mutations(parse_spec(explicit, source="t", builtin_trainable=False))["optim"]["lr"]
    assert (lr.lower, lr.upper) == (1e-4, 1e-2) and type(lr.sampler).__name__ == "_LogUniform"


@pytest.mark.parametrize(
    ("scheduler", "message"),
    [
        ({"perturbation_interval": 8}, "8 >= budget/epochs (8): PBT would never perturb"),
        ({"perturbation_interval": 0}, "expected a whole number of epochs >= 1, got 0"),
        ({"mutate": ["aug/nope"]}, "study/scheduler/mutate/aug/nope: not a sampled parameter"),
        ({"quantile_fraction": 0.7}, "expected a number in (0, 0.5], got 0.7"),
        (
            {"mutations": []},
            "study/scheduler/mutations: unknown option (did you mean 'mutate'?); "
            "valid: perturbation",
        ),
    ],
)
def test_bad_pbt_settings_are_located(scheduler, message):
    data = {**SPACE, "study": {**SPACE["study"], "scheduler": {"name": "pbt", **scheduler}}}
    with pytest.raises(SpecError) as info:
        parse_spec(data, source="t", builtin_trainable=False)
    assert message in str(info.value)


@pytest.mark.slow
def test_pbt_exploits_from_checkpoints_and_records_the_schedule(ray_local, tmp_path):
    rows_dir = tmp_path / "rows"
    rows_dir.mkdir()
    params = {**SPACE["params"], "log/rows": {"type": "fixed", "value": str(rows_dir)}}
    spec = parse_spec({**SPACE, "params": params}, source="t", builtin_trainable=False)
    result = run_search(spec, out=tmp_path / "run", trainable=grow, verbose=False)
    study = optuna.load_study(study_name="pbt", storage=result.storage)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4  # PBT never stops a trial
    exploits = [(t, e) for t in trials for e in t.user_attrs.get("pbt_schedule", [])]
    assert exploits, "PBT never exploited"
    tune_id = {t.number: t.user_attrs["tune_trial_id"] for t in trials}

    def rows(number):  # in the order the trial reported them
        path = rows_dir / f"{tune_id[number]}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    for trial, entry in exploits:
        assert entry["cloned"] in tune_id and entry["cloned"] != trial.number
        strength = entry["params"]["aug/color_jitter/strength"]
        assert 0.0 <= strength <= 1.0  # * 1.2 may not leave the declared range
        # a row trained from the donor's checkpoint with the perturbed strength:
        # its score continues one of the donor's scores
        donor = {(r["epoch"], round(r["score"], 9)) for r in rows(entry["cloned"])}
        continued = [
            r
            for r in rows(trial.number)
            if r["restored"]
            and r["strength"] == pytest.approx(strength)
            and (r["epoch"] - 1, round(r["score"] - r["strength"], 9)) in donor
        ]
        assert continued, (entry, rows(trial.number))
    for t in trials:  # the study's value is the trial's final score, whatever its schedule
        assert t.value == pytest.approx(rows(t.number)[-1]["score"])
        assert rows(t.number)[-1]["epoch"] == 8
