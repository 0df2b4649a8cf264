"""Masking-ratio schedules: each formula, the ratio of every step, resume mid-schedule."""

from __future__ import annotations

import math

import pytest
import torch

from trainables import Trainer, TrialConfig, load_dataset, run_epochs
from trainables.data import DataConfig
from trainables.masking import num_masked
from trainables.schedules import RATIO_SCHEDULES, ratio_at

REFERENCE = {  # the formulas as written in the docs, independent of the code
    "constant": lambda p, a, b: a,
    "linear": lambda p, a, b: (1 - p) * a + p * b,
    "cosine": lambda p, a, b: b + (a - b) * (1 + math.cos(math.pi * p)) / 2,
    "step": lambda p, a, b: a if p < 0.5 else b,
}


def test_every_schedule_is_its_formula():
    assert set(RATIO_SCHEDULES) == set(REFERENCE)
    for name, fn in RATIO_SCHEDULES.items():
        for p in (0.0, 0.1, 0.25, 0.49, 0.5, 0.9, 1.0):
            for a, b in ((0.4, 0.9), (0.9, 0.2), (0.6, 0.6)):
                assert fn(p, a, b) == pytest.approx(REFERENCE[name](p, a, b)), (name, p, a, b)
    # the ends: start at the first step, end at (or, stepwise, by) the last
    assert ratio_at("cosine", 0, 100, 0.4, 0.9) == pytest.approx(0.4)
    assert ratio_at("cosine", 100, 100, 0.4, 0.9) == pytest.approx(0.9)
    assert ratio_at("linear", 250, 100, 0.4, 0.9) == pytest.approx(0.9)  # clamped
    assert ratio_at("step", 49, 100, 0.4, 0.9) == 0.4 and ratio_at("step", 50, 100, 0.4, 0.9) == 0.9
    assert ratio_at("linear", 50, 100, 0.4, None) == 0.4  # no end: constant


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def cfg(schedule="linear", epochs=3):
    return TrialConfig.from_dict(
        {
            "train": {"epochs": epochs, "threads": 1},
            "optim": {"batch_size": 128},
            "aug": {},
            "mask": {"ratio": 0.2, "ratio_end": 0.8, "schedule": schedule},
        }
    )


def _recording(trainer):
    """Wrap the trainer's mask sampler: (step, masked tokens per row) of every batch."""
    seen = []
    sample = trainer.sample_mask

    def record(images):
        mask = sample(images)
        seen.append((trainer.step, sorted(set(mask.sum(dim=1).tolist()))))
        return mask

    trainer.sample_mask = record
    return seen


@pytest.mark.parametrize("schedule", ["linear", "cosine", "step"])
def test_each_step_masks_exactly_the_schedules_ratio(digits, schedule):
    trainer = Trainer(cfg(schedule), digits)
    seen = _recording(trainer)
    epochs = list(run_epochs(trainer))
    total = 3 * trainer.steps_per_epoch
    tokens = trainer.encoder.grid_hw[0] * trainer.encoder.grid_hw[1]
    assert [s for s, _ in seen] == list(range(total))
    for step, counts in seen:
        ratio = REFERENCE[schedule](step / total, 0.2, 0.8)
        assert counts == [num_masked(tokens, ratio)], (step, counts)
    # recorded per epoch: the ratio of the epoch's last batch
    last = [
        REFERENCE[schedule]((e * trainer.steps_per_epoch - 1) / total, 0.2, 0.8) for e in (1, 2, 3)
    ]
    assert [m["mask_ratio"] for m in epochs] == pytest.approx(last)
    assert len({c[0] for _, c in seen}) > 1  # the ratio did change


def test_a_resumed_trial_continues_its_schedule(digits, tmp_path):
    straight = Trainer(cfg("cosine"), digits)
    full = _recording(straight)
    list(run_epochs(straight))

    first = Trainer(cfg("cosine"), digits)
    first.train_epoch()
    first.save(tmp_path)
    resumed = Trainer(cfg("cosine"), digits)
    resumed.load(tmp_path)
    rest = _recording(resumed)
    list(run_epochs(resumed))
    assert rest == full[straight.steps_per_epoch :]


def test_objectives_without_masks_report_no_ratio(digits):
    config = cfg().__class__.from_dict(
        {
            "train": {"epochs": 1, "threads": 1},
            "loss": {"name": "simclr"},
            "model": {"name": "resnet_small"},
            "optim": {"batch_size": 128},
            "aug": {"resized_crop": {"min_scale": 0.5}},
        }
    )
    metrics = Trainer(config, digits).train_epoch()
    assert "mask_ratio" not in metrics and torch.isfinite(torch.tensor(metrics["loss"]))


def test_a_bad_schedule_or_end_ratio_is_refused_with_its_key():
    from trainables.config import ConfigError
    from trainables.validate import parse_trial_config

    with pytest.raises(ConfigError, match=r"mask/schedule.*did you mean 'cosine'"):
        parse_trial_config({"mask": {"schedule": "cosin"}})
    with pytest.raises(ConfigError, match=r"mask/ratio_end: expected a value in \[0, 0.95\]"):
        parse_trial_config({"mask": {"ratio_end": 0.99}})
