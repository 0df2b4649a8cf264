"""The training loop: it learns, resumes bit-for-bit, and fails typed on NaN."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from trainables import NonFiniteLossError, Trainer, TrialConfig, load_dataset, run_epochs
from trainables.data import DataConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def small(epochs=2, **sections):
    config = {"train": {"epochs": epochs, "threads": 1}, "optim": {"batch_size": 64}, "aug": {}}
    for key, value in sections.items():
        config.setdefault(key, {}).update(value)
    return TrialConfig.from_dict(config)


def test_digits_are_uint8_and_split_with_a_fixed_seed(digits):
    assert digits.train_x.dtype == torch.uint8 and digits.train_x.shape[1:] == (1, 8, 8)
    assert len(digits.train_x) + len(digits.val_x) == 1797
    assert digits.train_x.max() == 255 and digits.num_classes == 10
    again = load_dataset(DataConfig(name="digits"))
    assert torch.equal(again.val_y, digits.val_y)


def test_training_steps_reduce_the_loss(digits):
    trainer = Trainer(small(epochs=6, optim={"lr": 2e-3}), digits)
    losses = [m["loss"] for m in run_epochs(trainer)]
    assert losses[-1] < 0.8 * losses[0]


def test_probe_reports_knn_accuracy_above_chance(digits):
    trainer = Trainer(small(epochs=1), digits)
    metrics = trainer.evaluate()
    assert set(metrics) == {"knn_top1", "knn_top5", "probe_time_s"}
    assert 0.15 < metrics["knn_top1"] <= 1.0  # chance is 0.1
    assert metrics["knn_top5"] >= metrics["knn_top1"]


def test_baselines_are_the_random_init_encoder_and_the_probe_on_the_pixels(digits):
    from trainables.loop import baseline_metrics
    from trainables.probes import knn

    cfg = small(epochs=1)
    found = baseline_metrics(cfg, digits)
    assert set(found) == {"random_init", "raw_input"}
    init = Trainer(cfg, digits).evaluate()
    assert found["random_init"]["knn_top1"] == init["knn_top1"]  # same seed, same encoder
    trainer = Trainer(cfg, digits)
    mean, std = trainer.mean, trainer.std

    def pixels(x):
        return ((x.float() / 255 - mean) / std).flatten(1)

    ref = knn(pixels(digits.train_x), digits.train_y, pixels(digits.val_x), digits.val_y)
    assert found["raw_input"]["knn_top1"] == pytest.approx(ref["knn_top1"], abs=1e-9)
    assert found["raw_input"]["knn_top1"] > 0.9  # digits' pixels are nearly separable


def test_the_raw_input_baseline_pools_large_images_to_32_a_side(digits):
    from trainables.loop import RAW_SIDE

    trainer = Trainer(small(epochs=1), digits)
    big = torch.randint(0, 256, (5, 1, 96, 64), dtype=torch.uint8)
    assert trainer.features(big, raw=True).shape == (5, RAW_SIDE * RAW_SIDE)
    assert trainer.features(digits.val_x[:5], raw=True).shape == (5, 64)  # 8x8: as it is


@pytest.mark.parametrize(("loss", "views"), [("mae", 1), ("hybrid", 2)])
def test_a_one_epoch_trial_masks_by_the_encoders_attention(digits, loss, views):
    mask = {"strategy": "attention", "ratio": 0.75, "attention": {"mode": "high"}}
    cfg = small(epochs=1, mask=mask, optim={"batch_size": 256}, loss={"name": loss})
    trainer = Trainer(cfg, digits)
    seen = []
    sample = trainer.sample_mask

    def record(images):
        mask = sample(images)
        seen.append((trainer.encoder.cls_attention(images), mask))
        return mask

    trainer.sample_mask = record
    metrics = trainer.train_epoch()
    assert math.isfinite(metrics["loss"]) and metrics["mask_ratio"] == 0.75
    assert len(seen) == views * trainer.steps_per_epoch  # each view masked by its own attention
    for att, mask in seen:  # the 12 of 16 most attended tokens, as the model saw the batch
        assert (mask.sum(dim=1) == 12).all()
        assert (att.masked_fill(~mask, 2).amin(1) >= att.masked_fill(mask, -1).amax(1)).all()
    again = Trainer(cfg, digits).train_epoch()  # seeded: the same masks, the same loss
    assert again["loss"] == metrics["loss"]


def test_checkpoint_resume_is_bit_for_bit(digits, tmp_path):
    cfg = small(epochs=3, aug={"resized_crop": {"min_scale": 0.7}})
    straight = Trainer(cfg, digits)
    full = [m["loss"] for m in run_epochs(straight)]

    first = Trainer(cfg, digits)
    first.train_epoch()
    first.save(tmp_path)
    resumed = Trainer(cfg, digits)
    resumed.load(tmp_path)
    rest = [m["loss"] for m in run_epochs(resumed)]
    assert rest == full[1:]
    for a, b in zip(
        straight.objective.state_dict().values(),
        resumed.objective.state_dict().values(),
        strict=True,
    ):
        assert torch.equal(a, b)


def test_non_finite_loss_raises_a_typed_error(digits):
    cfg = small(epochs=3, optim={"lr": 1e12, "grad_clip": 0.0, "warmup_epochs": 0})
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        for _ in run_epochs(Trainer(cfg, digits)):
            pass


def test_warmup_then_cosine_schedule(digits):
    trainer = Trainer(small(epochs=10, optim={"lr": 1.0, "warmup_epochs": 2}), digits)
    spe = trainer.steps_per_epoch
    assert trainer.lr_at(0) == pytest.approx(1.0 / (2 * spe))
    assert trainer.lr_at(2 * spe - 1) == pytest.approx(1.0)
    assert trainer.lr_at(10 * spe) == pytest.approx(0.01)
    lrs = [trainer.lr_at(s) for s in range(2 * spe, 10 * spe)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_a_horizon_makes_a_short_trial_the_first_part_of_a_long_run(digits):
    optim = {"lr": 1.0, "warmup_epochs": 2}
    mask = {"ratio": 0.2, "ratio_end": 0.8, "schedule": "linear"}
    short = Trainer(small(epochs=4, train={"horizon": 12}, optim=optim, mask=mask), digits)
    long = Trainer(small(epochs=12, optim=optim, mask=mask), digits)
    whole = Trainer(small(epochs=4, optim=optim, mask=mask), digits)
    steps = range(4 * short.steps_per_epoch)
    assert [short.lr_at(s) for s in steps] == [long.lr_at(s) for s in steps]
    assert [short.mask_ratio_at(s) for s in steps] == [long.mask_ratio_at(s) for s in steps]
    end = 4 * short.steps_per_epoch - 1
    # stopped partway: the rate not yet decayed, the ratio not yet at its end
    assert short.lr_at(end) > 0.7 and whole.lr_at(end) == pytest.approx(0.01, abs=0.01)
    assert short.mask_ratio_at(end) < 0.45 and whole.mask_ratio_at(end) > 0.75
    assert list(run_epochs(short))[-1]["epoch"] == 4  # and it trains its own 4 epochs


@pytest.mark.parametrize("loss", ["mae", "simclr"])
def test_bf16_autocast_trains(digits, loss):
    cfg = small(epochs=1, train={"precision": "bf16"}, loss={"name": loss})
    trainer = Trainer(cfg, digits)
    assert trainer.bf16
    (metrics,) = run_epochs(trainer)
    assert torch.isfinite(torch.tensor(metrics["loss"]))
    assert trainer.features(digits.val_x[:8]).dtype == torch.float32


@pytest.mark.slow
def test_compiled_step_matches_eager(digits):
    eager = Trainer(small(epochs=1), digits)
    compiled = Trainer(small(epochs=1, train={"compile": True}), digits)
    a, b = eager.train_epoch()["loss"], compiled.train_epoch()["loss"]
    assert b == pytest.approx(a, rel=1e-3)
    # checkpoints of a compiled trainer have the plain parameter names
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict()["objective"])


def test_trial_errors_survive_pickling():
    import pickle

    from trainables import ConfigError

    err = pickle.loads(pickle.dumps(NonFiniteLossError(3, 7, float("nan"))))
    assert (err.epoch, err.step, str(err)) == (3, 7, "non-finite loss nan at epoch 3, step 7")
    cfg_err = pickle.loads(pickle.dumps(ConfigError("a/b", "bad")))
    assert (cfg_err.path, str(cfg_err)) == ("a/b", "a/b: bad")


@pytest.mark.gpu
def test_cuda_uses_bf16_autocast_and_channels_last_cnns(digits):
    cfg = small(
        epochs=1,
        train={"device": "cuda"},
        loss={"name": "simclr"},
        model={"name": "resnet10t"},
        probe={"feature": "pooled"},
    )
    trainer = Trainer(cfg, digits)
    assert trainer.bf16 and trainer.channels_last
    (metrics,) = run_epochs(trainer)
    assert torch.isfinite(torch.tensor(metrics["loss"])) and metrics["knn_top1"] > 0.3
