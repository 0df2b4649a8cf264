"""Augmentation ops: each entry builds one batched module; a view is their composition.

Ops are kornia modules where kornia is fast (grayscale) and small batched
torch modules where a CPU needs them to be (crop, flip, colour jitter, blur,
solarize, random fields: one vectorised call per batch, in-place on their own
temporaries, instead of kornia's per-op parameter machinery and HSV round
trips; see ``bench/augment.py``).

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

from trainables._registry import Registry
from trainables.config import ConfigError

__all__ = [
    "AUGMENT_OPS",
    "ColourField",
    "DisplacementField",
    "build_pipeline",
    "register_augment_op",
]

AugmentOpFn = Callable[..., nn.Module]
AUGMENT_OPS: Registry[AugmentOpFn] = Registry(
    "augmentation op", reserved=("image_size", "channels")
)
register_augment_op = AUGMENT_OPS.register


def _coin(batch: int, p: float, device: torch.device) -> torch.Tensor:
    """Which samples an op applies to, ``[B, 1, 1, 1]`` as 0./1. floats.

    Ops blend with ``x + coin * (y - x)`` rather than ``torch.where``: on a CPU
    the arithmetic blend is several times faster for image batches.
    """
    return (torch.rand(batch, device=device) < p).float().view(batch, 1, 1, 1)


def _between(batch: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return low + (high - low) * torch.rand(batch, device=device)


class ResizedCrop(nn.Module):
    """Random resized crop back to the input size, the whole batch in one ``grid_sample``.

    Per sample: area share ``a ~ U(min_scale, 1)``, log-uniform aspect ratio in
    ``ratio``, a uniform position inside the image, bilinear resampling. A
    crop of the whole image is exactly the identity.
    """

    def __init__(self, min_scale: float, ratio: tuple[float, float], p: float) -> None:
        super().__init__()
        self.min_scale, self.ratio, self.p = min_scale, ratio, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, dev = x.shape[0], x.device
        area = _between(b, self.min_scale, 1.0, dev)
        log_r = _between(b, math.log(self.ratio[0]), math.log(self.ratio[1]), dev)
        w = (area * log_r.exp()).sqrt().clamp(max=1.0)
        h = (area / log_r.exp()).sqrt().clamp(max=1.0)
        apply = _coin(b, self.p, dev).view(b)
        w = 1 + apply * (w - 1)  # samples not drawn keep the whole image
        h = 1 + apply * (h - 1)
        cx = (1 - w) * (2 * torch.rand(b, device=dev) - 1)  # centre in [-1, 1] coordinates
        cy = (1 - h) * (2 * torch.rand(b, device=dev) - 1)
        height, width = x.shape[-2:]
        # pixel centres in [-1, 1] (align_corners=False), scaled and shifted per sample
        xs = (torch.arange(width, device=dev, dtype=x.dtype) * 2 + 1) / width - 1
        ys = (torch.arange(height, device=dev, dtype=x.dtype) * 2 + 1) / height - 1
        gx = (xs.view(1, 1, width) * w.view(b, 1, 1) + cx.view(b, 1, 1)).expand(b, height, width)
        gy = (ys.view(1, height, 1) * h.view(b, 1, 1) + cy.view(b, 1, 1)).expand(b, height, width)
        grid = torch.stack([gx, gy], dim=-1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


@register_augment_op("resized_crop", limits={"min_scale": "(0, 1]", "p": "[0, 1]"})
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
    return ResizedCrop(min_scale, (1.0 - spread / 4.0, 1.0 + spread / 3.0), p)


class HFlip(nn.Module):
    """Horizontal flip of each sample with probability ``p``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coin = _coin(x.shape[0], self.p, x.device)
        return x.flip(-1).sub_(x).mul_(coin).add_(x)


@register_augment_op("hflip", limits={"p": "[0, 1]"})
def hflip(*, image_size: int, channels: int, p: float = 0.5) -> nn.Module:
    """Horizontal flip with probability ``p``."""
    return HFlip(p)


_LUMA = (0.299, 0.587, 0.114)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


class ColorJitter(nn.Module):
    """Brightness, contrast, saturation and hue jitter, batched, in a random order per call.

    Factors are drawn per sample: brightness and contrast and saturation in
    ``[max(0, 1 - v), 1 + v]``, hue shift in ``[-h, h]`` of a full turn. Hue is
    a rotation of the chroma plane in YIQ space (a 3x3 matrix per sample),
    which avoids the HSV round trip that makes ``kornia.augmentation.ColorJitter``
    cost 5x more on a CPU.
    """

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float, p: float):
        super().__init__()
        self.b, self.c, self.s, self.h, self.p = brightness, contrast, saturation, hue, p

    def _hue(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        to_yiq = torch.tensor(
            [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
            device=x.device,
            dtype=x.dtype,
        )
        angle = 2 * math.pi * shift
        cos, sin = angle.cos(), angle.sin()
        rot = torch.zeros(len(shift), 3, 3, device=x.device, dtype=x.dtype)
        rot[:, 0, 0] = 1
        rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
        m = torch.linalg.inv(to_yiq) @ rot @ to_yiq  # [B, 3, 3]
        return torch.einsum("bij,bjhw->bihw", m, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # In-place ops on tensors this module owns: fresh large allocations page-fault,
        # which dominates the cost of these cheap element-wise ops on a CPU.
        n, dev = x.shape[0], x.device
        out = x
        for op in torch.randperm(4).tolist():
            if op == 0 and self.b > 0:
                f = _between(n, max(0.0, 1 - self.b), 1 + self.b, dev).view(n, 1, 1, 1)
                out = (out * f).clamp_(0, 1)
            elif op == 1 and self.c > 0:
                f = _between(n, max(0.0, 1 - self.c), 1 + self.c, dev).view(n, 1, 1, 1)
                mean = _grey(out).mean(dim=(1, 2, 3), keepdim=True)
                out = (out - mean).mul_(f).add_(mean).clamp_(0, 1)
            elif op == 2 and self.s > 0 and x.shape[1] == 3:
                f = _between(n, max(0.0, 1 - self.s), 1 + self.s, dev).view(n, 1, 1, 1)
                grey = _grey(out)
                out = (out - grey).mul_(f).add_(grey).clamp_(0, 1)
            elif op == 3 and self.h > 0 and x.shape[1] == 3:
                out = self._hue(out, _between(n, -self.h, self.h, dev)).clamp_(0, 1)
        if out is x:
            return x
        return out.sub_(x).mul_(_coin(n, self.p, dev)).add_(x)


@register_augment_op("color_jitter", limits={"strength": "[0, inf)", "p": "[0, 1]"})
def color_jitter(
    *, image_size: int, channels: int, strength: float = 0.5, p: float = 0.8
) -> nn.Module:
    """SimCLR's colour distortion of strength ``s``: brightness, contrast and saturation
    ``0.8 s``, hue ``0.2 s``, applied with probability ``p``. Grey images get brightness
    and contrast only."""
    if strength < 0:
        raise ValueError(f"strength must be >= 0, got {strength}")
    s = strength
    return ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, min(0.5, 0.2 * s), p)


@register_augment_op("grayscale", limits={"p": "[0, 1]"})
def grayscale(*, image_size: int, channels: int, p: float = 0.2) -> nn.Module:
    """Convert to grey (kept as 3 channels) with probability ``p``; identity on grey images."""
    if channels != 3:
        return nn.Identity()
    return K.RandomGrayscale(p=p)


class GaussianBlur(nn.Module):
    """Gaussian blur with a sigma drawn per sample, the whole batch in one grouped conv."""

    def __init__(self, kernel: int, sigma: tuple[float, float], p: float) -> None:
        super().__init__()
        self.kernel, self.sigma, self.p = kernel, sigma, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        sigma = _between(b, *self.sigma, x.device).view(b, 1)
        apply = _coin(b, self.p, x.device).view(b, 1)
        r = self.kernel // 2
        offsets = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype).view(1, -1)
        k = torch.exp(-0.5 * (offsets / sigma) ** 2)
        k = k / k.sum(dim=1, keepdim=True)
        identity = (offsets == 0).to(x.dtype)
        k = identity + apply * (k - identity)  # samples not drawn get a delta kernel
        k = k.repeat_interleave(c, dim=0)  # one 1-D kernel per (sample, channel)
        flat = F.pad(x.reshape(1, b * c, h, w), (r, r, r, r), mode="reflect")
        flat = F.conv2d(flat, k.view(b * c, 1, 1, -1), groups=b * c)
        flat = F.conv2d(flat, k.view(b * c, 1, -1, 1), groups=b * c)
        return flat.view(b, c, h, w)


@register_augment_op(
    "gaussian_blur",
    limits={"p": "[0, 1]", "sigma_min": "(0, inf)", "sigma_max": "(0, inf)"},
    ordered=[("sigma_min", "sigma_max")],
)
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
    return GaussianBlur(kernel, (sigma_min, sigma_max), p)


class Solarize(nn.Module):
    """Invert the pixels above ``threshold`` of each sample with probability ``p``."""

    def __init__(self, p: float, threshold: float = 0.5) -> None:
        super().__init__()
        self.p, self.threshold = p, threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flip = (x >= self.threshold).to(x.dtype).mul_(_coin(x.shape[0], self.p, x.device))
        return (1.0 - 2.0 * x).mul_(flip).add_(x)


@register_augment_op("solarize", limits={"p": "[0, 1]"})
def solarize(*, image_size: int, channels: int, p: float = 0.2) -> nn.Module:
    """Invert pixels above 0.5 with probability ``p`` (BYOL's asymmetric view)."""
    return Solarize(p)


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
        apply = _coin(b, self.p, x.device)
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
        apply = _coin(b, self.p, x.device)
        return (x + self.strength * apply * field).clamp(0.0, 1.0)


@register_augment_op(
    "displacement_field", limits={"strength": "[0, inf)", "length_scale": "(0, inf)", "p": "[0, 1]"}
)
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


@register_augment_op(
    "colour_field", limits={"strength": "[0, inf)", "length_scale": "(0, inf)", "p": "[0, 1]"}
)
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
        fn = AUGMENT_OPS.lookup(name)
        try:
            modules.append(fn(image_size=image_size, channels=channels, **dict(params)))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"aug/{name}", str(err)) from None
    return nn.Sequential(*modules)
