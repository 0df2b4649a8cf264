"""What one trial runs: data, augmentation, masking, encoder, objective, probes, loop.

Nothing here imports Ray except :mod:`trainables.trainable`, the Tune entry point.
"""

from __future__ import annotations

from trainables.config import ConfigError, TrialConfig
from trainables.data import Dataset, load_dataset
from trainables.loop import NonFiniteLossError, Trainer, run_epochs

__all__ = [
    "ConfigError",
    "Dataset",
    "NonFiniteLossError",
    "Trainer",
    "TrialConfig",
    "load_dataset",
    "run_epochs",
]
