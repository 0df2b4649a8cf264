"""Masking strategies: which patch tokens an MAE-style objective hides.

Contract (every entry of :data:`MASKING`)::

    fn(batch, grid_hw, ratio, *, generator, **options) -> BoolTensor[batch, H*W]

``True`` means masked. Every row masks exactly ``round(ratio * H * W)``
tokens, the whole batch is drawn at once on ``generator.device``, and the
same generator state gives the same masks.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainables._registry import lookup, make_register

__all__ = ["MASKING", "make_mask", "mask_from_scores", "num_masked", "register_masking"]

MaskFn = Callable[..., torch.Tensor]
MASKING: dict[str, MaskFn] = {}
register_masking = make_register(MASKING, "masking")


def num_masked(num_tokens: int, ratio: float) -> int:
    """The exact number of masked tokens per sample for ``ratio``."""
    return round(ratio * num_tokens)


def mask_from_scores(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mask the ``round(ratio * L)`` highest-scoring tokens of each row (exact count)."""
    batch, length = scores.shape
    k = num_masked(length, ratio)
    mask = torch.zeros(batch, length, dtype=torch.bool, device=scores.device)
    if k > 0:
        idx = scores.topk(k, dim=1).indices
        mask.scatter_(1, idx, True)
    return mask


@register_masking("random")
def random_mask(
    batch: int, grid_hw: tuple[int, int], ratio: float, *, generator: torch.Generator
) -> torch.Tensor:
    """MAE's uniform random masking: a random subset of exactly ``ratio`` of the tokens.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> m = random_mask(4, (4, 4), 0.75, generator=g)
        >>> m.shape, m.sum(dim=1).tolist()
        (torch.Size([4, 16]), [12, 12, 12, 12])
    """
    h, w = grid_hw
    noise = torch.rand(batch, h * w, generator=generator, device=generator.device)
    return mask_from_scores(noise, ratio)


def make_mask(
    strategy: str,
    batch: int,
    grid_hw: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator,
    **options: object,
) -> torch.Tensor:
    """Look up ``strategy`` and draw a batch of masks."""
    return lookup(MASKING, "masking strategy", strategy)(
        batch, grid_hw, ratio, generator=generator, **options
    )
