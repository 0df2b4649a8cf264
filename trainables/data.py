"""Data sources: a registry of loaders that return uint8 image tensors and labels.

Contract: ``(**options) -> (images uint8 [N, C, H, W], labels int64 [N] | None)``.
:func:`load_dataset` splits the result into a train set (the SSL training
images and the probe's memory bank) and a held-out val set (the probe's
queries) with a fixed seed. Nothing is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from trainables._registry import lookup, make_register
from trainables.config import ConfigError, DataConfig

__all__ = ["DATA_SOURCES", "Dataset", "load_dataset", "register_data_source"]

DataSourceFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
DATA_SOURCES: dict[str, DataSourceFn] = {}
register_data_source = make_register(DATA_SOURCES, "data_source")


@dataclass(frozen=True)
class Dataset:
    """A split dataset of uint8 images, the unit shared by all trials on a node.

    Attributes:
        train_x: uint8 ``[N, C, H, W]`` training images.
        train_y: int64 ``[N]`` labels, or ``None`` for unlabelled data.
        val_x: uint8 held-out images (probe queries).
        val_y: int64 labels of ``val_x`` or ``None``.
        name: data source name.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor | None
    val_x: torch.Tensor
    val_y: torch.Tensor | None
    name: str

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_classes(self) -> int:
        if self.train_y is None:
            return 0
        return int(torch.cat([self.train_y, self.val_y]).max().item()) + 1

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images in [0, 1]."""
        x = self.train_x.float().div_(255.0)
        return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)


@register_data_source("digits")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(bunch.target).long()


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load a data source and split it into train and val with ``cfg.seed``.

    Example:
        >>> ds = load_dataset(DataConfig(name="digits"))
        >>> tuple(ds.train_x.shape), ds.train_x.dtype, ds.num_classes
        ((1348, 1, 8, 8), torch.uint8, 10)
    """
    source = lookup(DATA_SOURCES, "data source", cfg.name)
    try:
        images, labels = source(**dict(cfg.options))
    except TypeError as err:
        raise ConfigError("data/options", f"{cfg.name}: {err}") from None
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ConfigError("data/name", f"{cfg.name} must return uint8 [N, C, H, W] images")
    if labels is not None and len(labels) != len(images):
        raise ConfigError("data/name", f"{cfg.name}: {len(labels)} labels for {len(images)} images")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError("data/val_fraction", f"expected in (0, 1), got {cfg.val_fraction}")
    n = len(images)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    n_val = max(1, round(n * cfg.val_fraction))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return Dataset(
        train_x=images[train_idx].contiguous(),
        train_y=None if labels is None else labels[train_idx].contiguous(),
        val_x=images[val_idx].contiguous(),
        val_y=None if labels is None else labels[val_idx].contiguous(),
        name=cfg.name,
    )
