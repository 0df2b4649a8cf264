"""TrialConfig.from_dict: strict parsing with key paths."""

from __future__ import annotations

import pytest

from trainables import ConfigError, TrialConfig


def test_defaults_and_overrides():
    cfg = TrialConfig.from_dict({"optim": {"lr": 0.01}, "aug": {"hflip": {"p": 0.2}}})
    assert cfg.optim.lr == 0.01
    assert dict(cfg.aug.ops) == {"hflip": {"p": 0.2}}
    assert cfg.mask.strategy == "random"


def test_round_trip_through_to_dict():
    cfg = TrialConfig.from_dict({"mask": {"ratio": 0.6}, "probe": {"knn": {"k": 5}}})
    again = TrialConfig.from_dict(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        ({"optim": {"lrr": 1.0}}, "optim/lrr", "did you mean 'lr'"),
        ({"optim": {"lr": "fast"}}, "optim/lr", "expected a number"),
        ({"train": {"epochs": 2.5}}, "train/epochs", "expected an integer"),
        ({"oops": {}}, "oops", "unknown key"),
    ],
)
def test_bad_values_name_the_key_path(config, path, fragment):
    with pytest.raises(ConfigError) as info:
        TrialConfig.from_dict(config)
    assert info.value.path == path
    assert fragment in str(info.value)
