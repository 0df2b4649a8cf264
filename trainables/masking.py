"""Masking strategies: which patch tokens an MAE-style objective hides.

Contract (every entry of :data:`MASKING`)::

    fn(batch, grid_hw, ratio, *, generator, **options) -> BoolTensor[batch, H*W]

``True`` means masked. Every row masks exactly ``round(ratio * H * W)``
tokens, the whole batch is drawn at once on ``generator.device``, and the
same generator state gives the same masks.

A strategy that masks by what the model makes of the batch registers with
``scores="attention"`` and takes a keyword ``scores: Tensor[batch, H*W]``:
the trainer then computes them (:meth:`trainables.encoders.Encoder.cls_attention`,
no gradients) before each masked batch. Data-independent strategies never
pay for them; :data:`SCORES` names the kinds a trainer can supply.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch

from trainables._registry import Registry
from trainables.config import num_masked

__all__ = [
    "ATTENTION_MODES",
    "COLOURS",
    "MASKING",
    "SCORES",
    "attention_mask",
    "block_mask",
    "colour_noise_mask",
    "grid_mask",
    "inverse_block_mask",
    "make_mask",
    "mask_from_scores",
    "num_masked",
    "random_mask",
    "register_masking",
]

MaskFn = Callable[..., torch.Tensor]
MASKING: Registry[MaskFn] = Registry(
    "masking strategy", reserved=("batch", "grid_hw", "ratio", "generator", "scores")
)
#: The model-derived scores a strategy may ask for (``register_masking(..., scores=...)``).
SCORES = ("attention",)


def register_masking(
    name: str,
    *,
    scores: str | None = None,
    limits: Mapping[str, Any] | None = None,
    **metadata: Any,
) -> Callable[[MaskFn], MaskFn]:
    """Register a masking strategy (see :meth:`~trainables._registry.Registry.register`).

    ``scores``: the model-derived scores the strategy takes as its ``scores``
    keyword, one of :data:`SCORES` (None: a data-independent strategy).
    """
    if scores is not None:
        if scores not in SCORES:
            raise ValueError(f"masking strategy '{name}': scores must be one of {SCORES}")
        metadata["scores"] = scores
    return MASKING.register(name, limits=limits, **metadata)


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


def _uniform(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=generator.device)


def _rect_scores(
    batch: int,
    grid_hw: tuple[int, int],
    *,
    generator: torch.Generator,
    num_blocks: int,
    min_size: float,
    max_size: float,
    aspect: float,
) -> torch.Tensor:
    """Index of the first of ``num_blocks`` random rectangles covering each token.

    Returns ``[B, H*W]`` floats; ``num_blocks`` where no rectangle covers the token.

    Each rectangle covers a share of the grid drawn uniformly in
    ``[min_size, max_size]`` with a log-uniform aspect ratio in
    ``[aspect, 1/aspect]`` (BEiT's blockwise masking, drawn for the whole batch).
    """
    h, w = grid_hw
    area = (min_size + (max_size - min_size) * _uniform(generator, batch, num_blocks)) * h * w
    log_ratio = math.log(aspect) * (2 * _uniform(generator, batch, num_blocks) - 1)
    ratio = log_ratio.exp()
    bh = (area * ratio).sqrt().round().clamp(1, h)
    bw = (area / ratio).sqrt().round().clamp(1, w)
    top = ((h - bh + 1) * _uniform(generator, batch, num_blocks)).floor()
    left = ((w - bw + 1) * _uniform(generator, batch, num_blocks)).floor()
    rows = torch.arange(h, device=generator.device).view(1, 1, h, 1)
    cols = torch.arange(w, device=generator.device).view(1, 1, 1, w)
    inside = (
        (rows >= top[..., None, None])
        & (rows < (top + bh)[..., None, None])
        & (cols >= left[..., None, None])
        & (cols < (left + bw)[..., None, None])
    )
    first = torch.where(inside.any(dim=1), inside.float().argmax(dim=1), num_blocks)
    return first.flatten(1).float()


def _block_order(
    batch: int,
    grid_hw: tuple[int, int],
    share: float,
    *,
    generator: torch.Generator,
    min_size: float,
    max_size: float,
    aspect: float,
    num_blocks: int | None,
) -> torch.Tensor:
    """Per token: the draw order of the first block covering it, plus tie-breaking noise.

    Enough blocks are drawn to cover ``share`` of the grid about twice over.
    """
    if not 0 < aspect <= 1:
        raise ValueError(f"aspect must be in (0, 1], got {aspect}")
    if not 0 < min_size <= max_size <= 1:
        raise ValueError(f"need 0 < min_size <= max_size <= 1, got {min_size}, {max_size}")
    if num_blocks is None:
        num_blocks = max(1, math.ceil(2 * share / ((min_size + max_size) / 2)))
    first = _rect_scores(
        batch,
        grid_hw,
        generator=generator,
        num_blocks=num_blocks,
        min_size=min_size,
        max_size=max_size,
        aspect=aspect,
    )
    return first + 0.5 * _uniform(generator, batch, grid_hw[0] * grid_hw[1])


@register_masking(
    "block",
    limits={
        "min_size": "(0, 1]",
        "max_size": "(0, 1]",
        "aspect": "(0, 1]",
        "num_blocks": "[1, inf)",
    },
    ordered=[("min_size", "max_size")],
)
def block_mask(
    batch: int,
    grid_hw: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator,
    min_size: float = 0.05,
    max_size: float = 0.3,
    aspect: float = 0.3,
    num_blocks: int | None = None,
) -> torch.Tensor:
    """BEiT-style blockwise masking: unions of random rectangles, exact count.

    Args:
        min_size, max_size: share of the grid one block covers.
        aspect: blocks have aspect ratios in ``[aspect, 1/aspect]`` (0 < aspect <= 1).
        num_blocks: rectangles drawn per sample (default: enough to cover the ratio twice).

    Rectangles are masked in the order they were drawn until the count is
    reached (the last one only in part, tokens at random), so the count is
    exact and the masked area is a union of blocks.
    """
    order = _block_order(
        batch,
        grid_hw,
        ratio,
        generator=generator,
        min_size=min_size,
        max_size=max_size,
        aspect=aspect,
        num_blocks=num_blocks,
    )
    return mask_from_scores(-order, ratio)


@register_masking(
    "inverse_block",
    limits={
        "min_size": "(0, 1]",
        "max_size": "(0, 1]",
        "aspect": "(0, 1]",
        "num_blocks": "[1, inf)",
    },
    ordered=[("min_size", "max_size")],
)
def inverse_block_mask(
    batch: int,
    grid_hw: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator,
    min_size: float = 0.05,
    max_size: float = 0.3,
    aspect: float = 0.3,
    num_blocks: int | None = None,
) -> torch.Tensor:
    """The complement of blockwise masking: the *visible* tokens form blocks
    (the first rectangles drawn stay visible; everything else is masked first)."""
    order = _block_order(
        batch,
        grid_hw,
        1.0 - ratio,
        generator=generator,
        min_size=min_size,
        max_size=max_size,
        aspect=aspect,
        num_blocks=num_blocks,
    )
    return mask_from_scores(order, ratio)


def _bayer(n: int) -> torch.Tensor:
    """The ``n x n`` ordered-dithering (Bayer) matrix, n a power of two: values 0..n*n-1."""
    m = torch.zeros(1, 1, dtype=torch.long)
    while m.shape[0] < n:
        m = torch.cat(
            [torch.cat([4 * m, 4 * m + 2], dim=1), torch.cat([4 * m + 3, 4 * m + 1], dim=1)],
            dim=0,
        )
    return m


@register_masking("grid")
def grid_mask(
    batch: int, grid_hw: tuple[int, int], ratio: float, *, generator: torch.Generator
) -> torch.Tensor:
    """Regular masking: tokens in ordered-dithering order, so every ratio is evenly spread.

    A random cyclic shift per sample varies which tokens are hidden; at
    ratio 0.5 the mask is a checkerboard, at 0.75 every other row and column.
    """
    h, w = grid_hw
    n = 1 << max(h, w, 1).bit_length()
    order = _bayer(n).to(generator.device).float()
    dy = (_uniform(generator, batch) * n).long()
    dx = (_uniform(generator, batch) * n).long()
    rows = (torch.arange(h, device=generator.device)[None, :] + dy[:, None]) % n
    cols = (torch.arange(w, device=generator.device)[None, :] + dx[:, None]) % n
    scores = order[rows[:, :, None], cols[:, None, :]].flatten(1)
    # mask the tokens that come *last* in dithering order: the kept ones stay spread out
    tiebreak = _uniform(generator, batch, h * w) * 1e-3
    return mask_from_scores(scores + tiebreak, ratio)


#: ColorMAE's four noise colours: which spatial frequencies the filter keeps.
COLOURS = ("red", "blue", "green", "purple")


@register_masking(
    "colour_noise", limits={"colour": COLOURS, "cutoff": "(0, 1)", "bandwidth": "(0, inf)"}
)
def colour_noise_mask(
    batch: int,
    grid_hw: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator,
    colour: str = "green",
    cutoff: float = 0.15,
    bandwidth: float = 0.08,
) -> torch.Tensor:
    """ColorMAE's data-independent masks: filtered white noise, thresholded to the ratio.

    Args:
        colour: ``red`` (low-pass: large blobs), ``blue`` (high-pass: fine,
            dispersed), ``green`` (band-pass around ``cutoff``: mid-size blobs),
            ``purple`` (band-stop: both large and fine structure).
        cutoff: the filter's frequency in cycles per token (0 .. 0.7).
        bandwidth: width of the green/purple band.
    """
    if colour not in COLOURS:
        raise ValueError(f"colour must be one of {', '.join(COLOURS)}, got {colour!r}")
    h, w = grid_hw
    noise = torch.randn(batch, h, w, generator=generator, device=generator.device)
    fy = torch.fft.fftfreq(h, device=noise.device)[:, None]
    fx = torch.fft.rfftfreq(w, device=noise.device)[None, :]
    f = (fy**2 + fx**2).sqrt()
    low = torch.exp(-0.5 * (f / cutoff) ** 2)
    band = torch.exp(-0.5 * ((f - cutoff) / bandwidth) ** 2)
    gain = {"red": low, "blue": 1 - low, "green": band, "purple": 1 - band}[colour]
    filtered = torch.fft.irfft2(torch.fft.rfft2(noise) * gain, s=(h, w))
    return mask_from_scores(filtered.flatten(1), ratio)


#: AttMask's choices: hide the most attended tokens, the least, or a mix with random ones.
ATTENTION_MODES = ("high", "low", "hide_show")


@register_masking(
    "attention", scores="attention", limits={"mode": ATTENTION_MODES, "hide": "[0, 1]"}
)
def attention_mask(
    batch: int,
    grid_hw: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator,
    scores: torch.Tensor,
    mode: str = "high",
    hide: float = 0.5,
) -> torch.Tensor:
    """AttMask (Kakogeorgiou et al. 2022): mask by the encoder's class-token attention.

    Args:
        scores: ``[batch, H*W]`` attention of the class token to each patch.
        mode: ``high`` hides the most attended tokens (the hardest task),
            ``low`` the least attended, ``hide_show`` hides ``hide`` of the
            masked count from the most attended and the rest at random among
            the others (``hide=1`` is ``high``, ``hide=0`` is ``random``).
        hide: share of the masked tokens taken from the most attended (``hide_show``).

    Example:
        >>> att = torch.tensor([[0.1, 0.4, 0.2, 0.3]])
        >>> g = torch.Generator().manual_seed(0)
        >>> attention_mask(1, (2, 2), 0.5, generator=g, scores=att).int().tolist()
        [[0, 1, 0, 1]]
        >>> attention_mask(1, (2, 2), 0.5, generator=g, scores=att, mode="low").int().tolist()
        [[1, 0, 1, 0]]
    """
    length = grid_hw[0] * grid_hw[1]
    if tuple(scores.shape) != (batch, length):
        raise ValueError(f"scores must be [{batch}, {length}], got {list(scores.shape)}")
    if mode not in ATTENTION_MODES:
        raise ValueError(f"mode must be one of {', '.join(ATTENTION_MODES)}, got {mode!r}")
    if mode == "high":
        return mask_from_scores(scores, ratio)
    if mode == "low":
        return mask_from_scores(-scores, ratio)
    hidden = mask_from_scores(scores, num_masked(length, ratio) * hide / length)
    noise = _uniform(generator, batch, length)  # in [0, 1): below every hidden token's 2
    return mask_from_scores(noise + 2.0 * hidden, ratio)


def make_mask(
    strategy: str,
    batch: int,
    grid_hw: tuple[int, int],
    ratio: float,
    *,
    generator: torch.Generator,
    scores: torch.Tensor | None = None,
    **options: object,
) -> torch.Tensor:
    """Look up ``strategy`` and draw a batch of masks (``scores`` for a strategy that
    registered ``scores=...``; ignored by the others)."""
    fn = MASKING.lookup(strategy)
    kind = MASKING.meta(strategy).get("scores")
    if kind is None:
        return fn(batch, grid_hw, ratio, generator=generator, **options)
    if scores is None:
        raise ValueError(f"masking strategy '{strategy}' needs the model's {kind} scores")
    return fn(batch, grid_hw, ratio, generator=generator, scores=scores, **options)
