"""What one trial runs: data, augmentation, masking, encoder, objective, probes, loop.

Nothing here imports Ray except :mod:`trainables.trainable`, the Tune entry point.
The names below are imported on first use, so that the torch-free modules
(:mod:`trainables.errors`, :mod:`trainables.config`, :mod:`trainables._registry`)
can be imported without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ConfigError",
    "Dataset",
    "NonFiniteLossError",
    "Trainer",
    "TrialConfig",
    "load_dataset",
    "parse_trial_config",
    "run_epochs",
]

_HOME = {
    "ConfigError": "trainables.config",
    "TrialConfig": "trainables.config",
    "Dataset": "trainables.data",
    "load_dataset": "trainables.data",
    "NonFiniteLossError": "trainables.loop",
    "Trainer": "trainables.loop",
    "run_epochs": "trainables.loop",
    "parse_trial_config": "trainables.validate",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'trainables' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
