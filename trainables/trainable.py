"""The Ray Tune entry point of a trial (the only module in ``trainables`` that imports ray).

``tune.with_parameters(train_trial, dataset=dataset)`` puts the dataset in
Ray's object store once; every trial (and every reused actor) on a node
reads it from there instead of decoding it again.
"""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from ray import tune

from trainables.config import TrialConfig
from trainables.data import Dataset, load_dataset
from trainables.loop import Trainer, run_epochs
from trainables.validate import parse_trial_config

__all__ = ["train_trial"]


def _cpu_threads(cfg: TrialConfig) -> int:
    if cfg.train.threads:
        return cfg.train.threads
    try:
        resources = tune.get_context().get_trial_resources().required_resources
        return max(1, int(resources.get("CPU", 1)))
    except Exception:  # outside a Tune session
        return max(1, torch.get_num_threads())


def train_trial(config: dict[str, Any], dataset: Dataset | None = None) -> None:
    """Train one trial, reporting metrics and a checkpoint every epoch.

    Resumes from ``tune.get_checkpoint()`` when Tune restores the trial.

    Args:
        config: the nested trial config (see :class:`~trainables.config.TrialConfig`).
        dataset: the shared dataset; loaded from ``config["data"]`` when None.
    """
    cfg = parse_trial_config(config)
    torch.set_num_threads(_cpu_threads(cfg))
    if dataset is None or dataset.config != cfg.data:  # the data itself is searched
        dataset = load_dataset(cfg.data)
    trainer = Trainer(cfg, dataset)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.load(directory)
    for metrics in run_epochs(trainer):
        with tempfile.TemporaryDirectory() as directory:
            trainer.save(directory)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))
