"""Compiling a spec to a define-by-run function, checked exactly with FixedTrial."""

from __future__ import annotations

import optuna
import pytest

from spaces import define_by_run, nest, parse_spec
from trainables import TrialConfig


def spec_of(params, **extra):
    return parse_spec({"params": params, "budget": {"epochs": 7}, **extra}, source="inline")


def test_names_with_slashes_nest_the_trial_config():
    spec = spec_of(
        {
            "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
            "loss/mae/norm_pix": {"type": "categorical", "choices": [False, True]},
            "train/seed": {"type": "fixed", "value": 5},
        },
        mask={"strategy": "random"},
    )
    config = define_by_run(spec)(
        optuna.trial.FixedTrial({"mask/ratio": 0.3, "loss/mae/norm_pix": True})
    )
    assert config["mask"] == {"strategy": "random", "ratio": 0.3}
    assert config["loss"] == {"mae": {"norm_pix": True}}
    assert config["train"] == {"seed": 5, "epochs": 7}
    cfg = TrialConfig.from_dict(config)
    assert (cfg.mask.ratio, cfg.train.seed, cfg.train.epochs) == (0.3, 5, 7)
    assert cfg.loss.options["mae"]["norm_pix"] is True


def test_samples_stay_inside_their_distributions():
    spec = spec_of(
        {
            "optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "optim/batch_size": {"type": "int", "low": 32, "high": 128, "step": 32},
        }
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    fn = define_by_run(spec)
    for _ in range(50):
        trial = study.ask()
        config = fn(trial)
        assert 1e-4 <= config["optim"]["lr"] <= 1e-2
        assert config["optim"]["batch_size"] in (32, 64, 96, 128)
        study.tell(trial, 0.0)
    dist = study.trials[0].distributions["optim/lr"]
    assert isinstance(dist, optuna.distributions.FloatDistribution) and dist.log


def test_fixed_values_are_recorded_on_the_trial():
    spec = spec_of({"train/seed": {"type": "fixed", "value": 11}})
    study = optuna.create_study()
    trial = study.ask()
    define_by_run(spec)(trial)
    assert trial.user_attrs == {"fixed/train/seed": 11}
    assert trial.params == {}


def test_nest_does_not_modify_the_base():
    base = {"mask": {"strategy": "random"}}
    out = nest({"mask/ratio": 0.5}, base)
    assert base == {"mask": {"strategy": "random"}}
    assert out == {"mask": {"strategy": "random", "ratio": 0.5}}


def test_fixed_trial_missing_a_param_fails_loudly():
    spec = spec_of({"mask/ratio": {"type": "float", "low": 0.1, "high": 0.9}})
    with pytest.raises(ValueError):
        define_by_run(spec)(optuna.trial.FixedTrial({}))
