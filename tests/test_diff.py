"""What a resumed study may and may not change."""

from __future__ import annotations

from spaces import parse_spec
from spaces.diff import incompatibilities


def spec_of(data, **kw):
    return parse_spec(data, source="inline", **kw)


def test_an_edit_that_changes_a_distribution_is_listed_and_fixed_values_are_allowed():
    base = {
        "params": {
            "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
            "optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
        }
    }
    old = spec_of(base)
    same = spec_of(
        {
            "params": {**base["params"], "train/seed": {"type": "fixed", "value": 3}},
            "budget": {"trials": 99},
        }
    )
    assert incompatibilities(old, same) == []
    edited = spec_of(
        {
            "params": {
                "mask/ratio": {"type": "float", "low": 0.2, "high": 0.9},
                "mask/strategy": {"type": "categorical", "choices": ["random", "block"]},
            }
        }
    )
    assert incompatibilities(old, edited) == [
        "params/mask/ratio: float low=0.1, high=0.9, log=False, step=None -> "
        "float low=0.2, high=0.9, log=False, step=None",
        "params/optim/lr: removed (was float low=0.0001, high=0.01, log=True, step=None)",
        "params/mask/strategy: added (categorical choices=('random', 'block'))",
    ]
