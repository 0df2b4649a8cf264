"""Augmentation ops: shape/dtype/range kept, strength 0 is the identity, monotone strength."""

from __future__ import annotations

import pytest
import torch

from trainables import TrialConfig
from trainables.augment import AUGMENT_OPS, build_pipeline

# For each op: the parameters at which it must be the identity.
IDENTITY = {
    "resized_crop": {"min_scale": 1.0},
    "hflip": {"p": 0.0},
    "color_jitter": {"strength": 0.0, "p": 1.0},
    "grayscale": {"p": 0.0},
    "gaussian_blur": {"p": 0.0},
    "solarize": {"p": 0.0},
    "displacement_field": {"strength": 0.0},
    "colour_field": {"strength": 0.0},
}


def batch(channels=3, size=16, n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    # smooth-ish images with structure, so that geometric ops change them
    base = torch.rand(n, channels, size // 4, size // 4, generator=g)
    return torch.nn.functional.interpolate(base, size=(size, size), mode="bilinear")


def test_every_op_has_an_identity_case():
    assert set(IDENTITY) == set(AUGMENT_OPS)


@pytest.mark.parametrize("name", sorted(AUGMENT_OPS))
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_and_range_are_kept(name, channels):
    torch.manual_seed(0)
    x = batch(channels)
    out = build_pipeline({name: {}}, image_size=16, channels=channels)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0.0 and out.max() <= 1.0


@pytest.mark.parametrize("name", sorted(AUGMENT_OPS))
def test_strength_zero_is_the_identity(name):
    torch.manual_seed(0)
    x = batch()
    out = build_pipeline({name: IDENTITY[name]}, image_size=16, channels=3)(x)
    assert torch.allclose(out, x, atol=1e-5)


def change(name, params, seed=0):
    torch.manual_seed(seed)
    x = batch(n=64)
    out = build_pipeline({name: params}, image_size=16, channels=3)(x)
    return float((out - x).abs().mean())


@pytest.mark.parametrize(
    ("name", "ladder"),
    [
        ("color_jitter", [{"strength": s, "p": 1.0} for s in (0.1, 0.4, 1.0)]),
        ("resized_crop", [{"min_scale": m} for m in (0.9, 0.5, 0.15)]),
        (
            "gaussian_blur",
            [{"p": 1.0, "sigma_min": s, "sigma_max": s} for s in (0.3, 0.8, 2.0)],
        ),
        ("displacement_field", [{"strength": s} for s in (0.3, 1.0, 3.0)]),
        ("colour_field", [{"strength": s} for s in (0.02, 0.1, 0.3)]),
        ("solarize", [{"p": p} for p in (0.1, 0.5, 1.0)]),
        ("grayscale", [{"p": p} for p in (0.1, 0.5, 1.0)]),
        ("hflip", [{"p": p} for p in (0.1, 0.5, 1.0)]),
    ],
)
def test_change_grows_with_strength(name, ladder):
    changes = [change(name, params) for params in ladder]
    assert changes == sorted(changes) and changes[0] < changes[-1], changes


def test_displacement_field_is_smooth_with_a_long_length_scale():
    torch.manual_seed(0)
    x = torch.linspace(0, 1, 32).repeat(32, 1).expand(8, 1, 32, 32).contiguous()
    smooth = build_pipeline(
        {"displacement_field": {"strength": 2.0, "length_scale": 12.0}}, image_size=32, channels=1
    )(x)
    rough = build_pipeline(
        {"displacement_field": {"strength": 2.0, "length_scale": 1.0}}, image_size=32, channels=1
    )(x)

    def roughness(img):
        return float((img[..., 1:] - img[..., :-1]).diff(dim=-1).abs().mean())

    assert roughness(smooth) < roughness(rough)


def test_asymmetric_views_use_their_own_ops():
    from trainables import Trainer
    from trainables.data import DataConfig, load_dataset

    cfg = TrialConfig.from_dict(
        {
            "aug": {"hflip": {"p": 0.0}, "view2": {"hflip": {"p": 1.0}}},
            "loss": {"name": "mae"},
        }
    )
    assert dict(cfg.aug.view2) == {"hflip": {"p": 1.0}}
    assert TrialConfig.from_dict(cfg.to_dict()) == cfg
    trainer = Trainer(cfg, load_dataset(DataConfig()))
    images = trainer.train_x[:4]
    a, b = trainer.view_features(images)
    x = (images.float() / 255 - trainer.mean) / trainer.std
    assert torch.allclose(a, trainer.encoder.features(x, "cls"), atol=1e-5)
    assert torch.allclose(b, trainer.encoder.features(x.flip(-1), "cls"), atol=1e-5)


def test_bad_op_parameters_are_config_errors():
    from trainables import ConfigError

    with pytest.raises(ConfigError, match="aug/gaussian_blur"):
        build_pipeline(
            {"gaussian_blur": {"sigma_min": 2, "sigma_max": 1}}, image_size=8, channels=1
        )
    with pytest.raises(ConfigError, match="aug/color_jitter"):
        build_pipeline({"color_jitter": {"strenght": 1}}, image_size=8, channels=1)
