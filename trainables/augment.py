"""Augmentation ops: each entry builds one kornia module; a view is their composition.

Contract (every entry of :data:`AUGMENT_OPS`)::

    fn(*, image_size, channels, **params) -> torch.nn.Module

The module maps a float batch ``[B, C, H, W]`` in ``[0, 1]`` to a batch of the
same shape, dtype and range, drawing independent parameters per sample, on
whatever device the batch is on. :func:`build_pipeline` chains the ops of an
:class:`~trainables.config.AugConfig` in order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import kornia.augmentation as K
from torch import nn

from trainables._registry import lookup, make_register
from trainables.config import ConfigError

__all__ = ["AUGMENT_OPS", "build_pipeline", "register_augment_op"]

AugmentOpFn = Callable[..., nn.Module]
AUGMENT_OPS: dict[str, AugmentOpFn] = {}
register_augment_op = make_register(AUGMENT_OPS, "augment_op")


@register_augment_op("resized_crop")
def resized_crop(
    *, image_size: int, channels: int, min_scale: float = 0.6, p: float = 1.0
) -> nn.Module:
    """Random resized crop to the input size, scale drawn from ``[min_scale, 1]``."""
    if not 0.0 < min_scale <= 1.0:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
    return K.RandomResizedCrop((image_size, image_size), scale=(min_scale, 1.0), p=p)


@register_augment_op("hflip")
def hflip(*, image_size: int, channels: int, p: float = 0.5) -> nn.Module:
    """Horizontal flip with probability ``p``."""
    return K.RandomHorizontalFlip(p=p)


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
