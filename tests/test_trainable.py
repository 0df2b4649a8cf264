"""The Tune entry point of the built-in trial, run by a real Tune (one trial, one epoch)."""

from __future__ import annotations

import pytest

from trainables.config import TrialConfig
from trainables.trainable import _cpu_threads


def test_threads_come_from_the_config_or_outside_tune_from_torch():
    import torch

    assert _cpu_threads(TrialConfig.from_dict({"train": {"threads": 3}})) == 3
    assert _cpu_threads(TrialConfig()) == max(1, torch.get_num_threads())


@pytest.mark.slow
def test_one_trial_reports_every_epoch_and_a_checkpoint(ray_local, tmp_path):
    from ray import tune

    from trainables.trainable import train_trial

    config = {"train": {"epochs": 2, "threads": 1}, "probe": {"names": ["knn", "rankme"]}}
    tuner = tune.Tuner(
        tune.with_resources(train_trial, {"cpu": 1}),
        param_space=config,
        run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0),
    )
    (result,) = tuner.fit()
    assert result.error is None
    rows = result.metrics_dataframe
    assert list(rows["epoch"]) == [1, 2]
    assert {"loss", "knn_top1", "knn_top5", "rankme", "lr"} <= set(rows.columns)
    assert result.checkpoint is not None
