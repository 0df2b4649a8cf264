"""Augmentation ops: each entry builds one kornia module; a view is their composition.

Contract (every entry of :data:`AUGMENT_OPS`)::

    fn(*, image_size, channels, **params) -> torch.nn.Module

The module maps a float batch ``[B, C, H, W]`` in ``[0, 1]`` to a batch of the
same shape, dtype and range, drawing independent parameters per sample, on
whatever device the batch is on. :func:`build_pipeline` chains the ops of an
:class:`~trainables.config.AugConfig` in order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from trainables._registry import lookup, make_register
from trainables.config import ConfigError

__all__ = [
    "AUGMENT_OPS",
    "ColourField",
    "DisplacementField",
    "build_pipeline",
    "register_augment_op",
]

AugmentOpFn = Callable[..., nn.Module]
AUGMENT_OPS: dict[str, AugmentOpFn] = {}
register_augment_op = make_register(AUGMENT_OPS, "augment_op")


@register_augment_op("resized_crop")
def resized_crop(
    *, image_size: int, channels: int, min_scale: float = 0.6, p: float = 1.0
) -> nn.Module:
    """Random resized crop back to the input size; area share drawn from ``[min_scale, 1]``.

    Aspect ratios are drawn from ``[3/4, 4/3]`` scaled by the crop strength
    ``1 - min_scale``, so ``min_scale=1`` is the identity.
    """
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
    spread = 1.0 - min_scale
    ratio = (1.0 - spread / 4.0, 1.0 + spread / 3.0)
    return K.RandomResizedCrop((image_size, image_size), scale=(min_scale, 1.0), ratio=ratio, p=p)


@register_augment_op("hflip")
def hflip(*, image_size: int, channels: int, p: float = 0.5) -> nn.Module:
    """Horizontal flip with probability ``p``."""
    return K.RandomHorizontalFlip(p=p)


@register_augment_op("color_jitter")
def color_jitter(
    *, image_size: int, channels: int, strength: float = 0.5, p: float = 0.8
) -> nn.Module:
    """SimCLR's colour distortion of strength ``s``: brightness, contrast and saturation
    ``0.8 s``, hue ``0.2 s``, applied with probability ``p``. Grey images get brightness
    and contrast only."""
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    s = strength
    if channels == 3:
        return K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.5, 0.2 * s), p=p)
    return K.ColorJitter(0.8 * s, 0.8 * s, 0.0, 0.0, p=p)


@register_augment_op("grayscale")
def grayscale(*, image_size: int, channels: int, p: float = 0.2) -> nn.Module:
    """Convert to grey (kept as 3 channels) with probability ``p``; identity on grey images."""
    if channels != 3:
        return nn.Identity()
    return K.RandomGrayscale(p=p)


@register_augment_op("gaussian_blur")
def gaussian_blur(
    *,
    image_size: int,
    channels: int,
    p: float = 0.5,
    sigma_min: float = 0.1,
    sigma_max: float = 2.0,
) -> nn.Module:
    """Gaussian blur with sigma drawn from ``[sigma_min, sigma_max]`` (pixels), probability ``p``.

    The kernel is about 10 % of the image side (SimCLR), odd, at least 3.
    """
    if not 0 < sigma_min <= sigma_max:
        raise ValueError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
    kernel = max(3, int(0.1 * image_size) // 2 * 2 + 1)
    return K.RandomGaussianBlur((kernel, kernel), (sigma_min, sigma_max), p=p)


@register_augment_op("solarize")
def solarize(*, image_size: int, channels: int, p: float = 0.2) -> nn.Module:
    """Invert pixels above 0.5 with probability ``p`` (BYOL's asymmetric view)."""
    return K.RandomSolarize(thresholds=0.0, additions=0.0, p=p)


def _smooth_field(
    batch: int, channels: int, size: int, length_scale: float, device: torch.device
) -> torch.Tensor:
    """A Gaussian random field with a squared-exponential spectrum, unit std per sample."""
    noise = torch.randn(batch, channels, size, size, device=device)
    f = torch.fft.fftfreq(size, device=device)
    fx = torch.fft.rfftfreq(size, device=device)
    k2 = f[:, None] ** 2 + fx[None, :] ** 2
    gain = torch.exp(-2.0 * (math.pi * length_scale) ** 2 * k2)
    field = torch.fft.irfft2(torch.fft.rfft2(noise) * gain, s=(size, size))
    field = field - field.mean(dim=(-2, -1), keepdim=True)
    return field / field.flatten(1).std(dim=1).clamp_min(1e-8).view(-1, 1, 1, 1)


class DisplacementField(nn.Module):
    """Warp each image by a smooth random displacement field (random-field augmentation).

    The per-pixel displacement is a Gaussian random field with length scale
    ``length_scale`` (pixels) and standard deviation ``strength`` (pixels),
    generalising translation and local elastic deformation.
    """

    def __init__(self, strength: float, length_scale: float, p: float) -> None:
        super().__init__()
        self.strength, self.length_scale, self.p = strength, length_scale, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.strength == 0 or self.p == 0:
            return x
        size = max(h, w)
        field = _smooth_field(b, 2, size, self.length_scale, x.device)[:, :, :h, :w]
        apply = (torch.rand(b, device=x.device) < self.p).float().view(b, 1, 1, 1)
        # displacement in pixels -> normalised [-1, 1] coordinates
        scale = torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=x.device)
        shift = (field * self.strength * apply).permute(0, 2, 3, 1) * scale
        ys = torch.linspace(-1, 1, h, device=x.device)
        xs = torch.linspace(-1, 1, w, device=x.device)
        base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
        grid = base.unsqueeze(0) + shift
        out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.clamp(0.0, 1.0)


class ColourField(nn.Module):
    """Add a smooth random colour field: per-pixel, per-channel brightness shifts."""

    def __init__(self, strength: float, length_scale: float, p: float) -> None:
        super().__init__()
        self.strength, self.length_scale, self.p = strength, length_scale, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if self.strength == 0 or self.p == 0:
            return x
        size = max(h, w)
        field = _smooth_field(b, c, size, self.length_scale, x.device)[:, :, :h, :w]
        apply = (torch.rand(b, device=x.device) < self.p).float().view(b, 1, 1, 1)
        return (x + self.strength * apply * field).clamp(0.0, 1.0)


@register_augment_op("displacement_field")
def displacement_field(
    *,
    image_size: int,
    channels: int,
    strength: float = 1.0,
    length_scale: float = 4.0,
    p: float = 1.0,
) -> nn.Module:
    """Random-field warp: displacement std ``strength`` pixels, smoothness ``length_scale``."""
    if strength < 0 or length_scale <= 0:
        raise ValueError("need strength >= 0 and length_scale > 0")
    return DisplacementField(strength, length_scale, p)


@register_augment_op("colour_field")
def colour_field(
    *,
    image_size: int,
    channels: int,
    strength: float = 0.1,
    length_scale: float = 4.0,
    p: float = 1.0,
) -> nn.Module:
    """Random-field colour shift: std ``strength`` ([0, 1] units), smoothness ``length_scale``."""
    if strength < 0 or length_scale <= 0:
        raise ValueError("need strength >= 0 and length_scale > 0")
    return ColourField(strength, length_scale, p)


def build_pipeline(
    ops: Mapping[str, Mapping[str, Any]], *, image_size: int, channels: int
) -> nn.Module:
    """Compose the configured ops, in order, into one batched module.

    Example:
        >>> aug = build_pipeline({"hflip": {"p": 1.0}}, image_size=8, channels=1)
        >>> x = torch.arange(64.0).view(1, 1, 8, 8) / 64
        >>> torch.equal(aug(x), x.flip(-1))
        True
    """
    modules = []
    for name, params in ops.items():
        fn = lookup(AUGMENT_OPS, "augmentation op", name)
        try:
            modules.append(fn(image_size=image_size, channels=channels, **dict(params)))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"aug/{name}", str(err)) from None
    return nn.Sequential(*modules)
