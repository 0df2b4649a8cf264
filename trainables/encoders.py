"""Encoders: timm models by name, plus small presets that train in seconds on a CPU.

:func:`build_encoder` returns an :class:`Encoder`: the timm model plus the two
calls a trial needs, :meth:`Encoder.encode_visible` (MAE: only unmasked
tokens go through the blocks) and :meth:`Encoder.features` (frozen features
for probes).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import timm
import torch
from timm.models.resnet import BasicBlock, ResNet
from timm.models.vision_transformer import Attention, VisionTransformer
from torch import nn

from trainables._registry import Registry
from trainables.config import VIT_SIZES, ConfigError, ModelConfig

__all__ = [
    "ENCODERS",
    "Encoder",
    "attention_problem",
    "build_encoder",
    "check_timm_name",
    "register_encoder",
    "timm_model_kind",
    "timm_vit_tokens",
]

#: Named encoders: ``(*, image_size, channels, **size) -> timm model``. Their size
#: options are the ``model/`` overrides (``patch_size``, ``embed_dim``, ...) they take;
#: ``attention`` says whether the model has ViT attention blocks. Any other name is
#: a timm model.
ENCODERS: Registry[Callable[..., nn.Module]] = Registry(
    "encoder", reserved=("image_size", "channels")
)
register_encoder = ENCODERS.register


def _vit(
    image_size: int, channels: int, patch_size: int, embed_dim: int, depth: int, num_heads: int
) -> nn.Module:
    """timm's VisionTransformer without a head, for the named ViT sizes below."""
    if image_size % patch_size:  # timm would drop the remainder; patchify would fail later
        raise ConfigError(
            "model/patch_size",
            f"patch size {patch_size} does not tile the {image_size}x{image_size} images",
        )
    return VisionTransformer(
        img_size=image_size,
        in_chans=channels,
        num_classes=0,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
    )


@register_encoder("vit_digits", attention=True)
def vit_digits(
    *,
    image_size: int,
    channels: int,
    patch_size: int = 2,
    embed_dim: int = 96,
    depth: int = 4,
    num_heads: int = 4,
) -> nn.Module:
    """8x8 digits: 2x2 patches -> 16 tokens; 4 blocks, 96 wide."""
    return _vit(image_size, channels, patch_size, embed_dim, depth, num_heads)


@register_encoder("vit_tiny_32", attention=True)
def vit_tiny_32(
    *,
    image_size: int,
    channels: int,
    patch_size: int = 4,
    embed_dim: int = 192,
    depth: int = 6,
    num_heads: int = 3,
) -> nn.Module:
    """32x32 images (shapes, CIFAR-style): 4x4 patches -> 64 tokens."""
    return _vit(image_size, channels, patch_size, embed_dim, depth, num_heads)


@register_encoder("resnet_small", attention=False)
def resnet_small(*, image_size: int, channels: int) -> nn.Module:
    """Small images (16-32 px) for the two-view objectives: a timm ResNet with one
    BasicBlock per stage and a 3x3 stride-1 stem without max-pool (the stem SimCLR
    uses on CIFAR), so a 16x16 image keeps 16x16 maps in the first stage."""
    return _small_image_resnet(
        in_chans=channels, layers=(1, 1, 1, 1), widths=(16, 32, 64, 128), stem_width=16
    )


def check_timm_name(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is a preset or a timm model."""
    if name in ENCODERS or timm.is_model(name):
        return
    close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
    hint = f" (timm has e.g. {', '.join(close)})" if close else ""
    raise ConfigError(
        "model/name",
        f"unknown encoder '{name}': not a named encoder ({', '.join(ENCODERS)}) "
        f"nor a timm model{hint}",
    )


def attention_problem(model: nn.Module, name: str | None = None) -> str | None:
    """Why the class token's attention cannot be read from ``model`` (None: it can).

    Attention-guided masking needs a timm VisionTransformer with a class
    token whose last block uses timm's ``Attention`` (qkv, heads, q/k norms).
    ``name`` is how messages call the model (default: its class).
    """
    name = f"'{name}' ({type(model).__name__})" if name else type(model).__name__
    if not isinstance(model, VisionTransformer):
        return f"{name} has no attention blocks (not a VisionTransformer)"
    if model.cls_token is None:
        return f"{name} has no class token, so no class-token attention"
    last = model.blocks[-1] if len(model.blocks) else None
    if last is None or not isinstance(getattr(last, "attn", None), Attention):
        return f"{name}'s last block does not use timm's Attention"
    return None


def _meta_model(name: str) -> nn.Module:
    """The timm model ``name`` on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, num_classes=0)


@functools.cache
def timm_vit_tokens(name: str) -> tuple[bool, bool]:
    """``(is a VisionTransformer, has a class token)`` for the timm model ``name``."""
    model = _meta_model(name)
    vit = isinstance(model, VisionTransformer)
    return vit, vit and model.cls_token is not None


@functools.cache
def timm_model_kind(name: str) -> tuple[bool, str | None]:
    """``(is a VisionTransformer, why its attention cannot be read or None)`` for the
    timm model ``name``."""
    model = _meta_model(name)
    return isinstance(model, VisionTransformer), attention_problem(model, name)


class Encoder(nn.Module):
    """A timm model plus what trials need of it.

    For a timm VisionTransformer: MAE-style visible-token encoding,
    class-token / mean-token / pooled features and the class token's attention
    to the patches (:meth:`cls_attention`). For any other timm model (a
    ResNet, ...): pooled features only.

    Attributes:
        model: the timm model (``num_classes=0``).
        vit: the same model when it is a VisionTransformer, else None.
        grid_hw: patch grid ``(H, W)`` (ViT only).
        patch_size: side of a square patch in pixels (ViT only).
        embed_dim: feature width.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.vit: VisionTransformer | None = model if isinstance(model, VisionTransformer) else None
        self.embed_dim: int = int(getattr(model, "embed_dim", None) or model.num_features)
        if self.vit is not None:
            self.grid_hw: tuple[int, int] = tuple(self.vit.patch_embed.grid_size)
            self.patch_size: int = int(self.vit.patch_embed.patch_size[0])

    @property
    def is_vit(self) -> bool:
        return self.vit is not None

    @property
    def num_tokens(self) -> int:
        return self.grid_hw[0] * self.grid_hw[1]

    def _tokens(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Embedded tokens before the blocks: class token, then the visible patches."""
        vit = self.vit
        if vit is None:
            raise TypeError(f"{type(self.model).__name__} has no tokens: MAE needs a ViT")
        tokens = vit.patch_embed(x)
        prefix = vit.num_prefix_tokens
        tokens = tokens + vit.pos_embed[:, prefix:, :]
        if mask is not None:
            batch = tokens.shape[0]
            keep = (~mask).nonzero(as_tuple=False)[:, 1].view(batch, -1)
            tokens = torch.gather(tokens, 1, keep.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
        if vit.cls_token is not None:
            cls = (vit.cls_token + vit.pos_embed[:, :1, :]).expand(tokens.shape[0], -1, -1)
            tokens = torch.cat([cls, tokens], dim=1)
        return vit.norm_pre(tokens)

    def encode_visible(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """Encode only the tokens where ``mask`` is False (MAE encoder).

        Args:
            x: images ``[B, C, H, W]``.
            mask: bool ``[B, L]`` with the same number of True per row, or None.

        Returns:
            ``[B, 1 + L_visible, D]``: class token then visible tokens, in order.
        """
        return self.vit.norm(self.vit.blocks(self._tokens(x, mask)))  # type: ignore[union-attr]

    @torch.no_grad()
    def cls_attention(self, x: torch.Tensor) -> torch.Tensor:
        """The class token's attention to each patch in the last block, mean over heads.

        The whole image goes through the encoder (no token is hidden), without
        gradients; the softmax runs over all tokens, the class token's own
        share is dropped. Returns ``[B, L]`` floats (row sums below 1).

        Example:
            >>> enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
            >>> enc.cls_attention(torch.rand(2, 1, 8, 8)).shape
            torch.Size([2, 16])
        """
        problem = attention_problem(self.model)
        if problem:
            raise TypeError(f"attention-guided masking needs a ViT's attention: {problem}")
        vit = self.vit
        tokens = self._tokens(x, None)
        for block in vit.blocks[:-1]:
            tokens = block(tokens)
        last = vit.blocks[-1]
        attn = last.attn
        h = last.norm1(tokens)
        batch, length, _ = h.shape
        qkv = attn.qkv(h).reshape(batch, length, 3, attn.num_heads, attn.head_dim)
        q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = attn.q_norm(q), attn.k_norm(k)
        logits = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)  # [B, heads, 1, N]
        weights = logits.float().softmax(dim=-1)[:, :, 0, vit.num_prefix_tokens :]
        return weights.mean(dim=1)

    def features(self, x: torch.Tensor, kind: str = "cls") -> torch.Tensor:
        """Frozen features of whole images.

        Args:
            x: images ``[B, C, H, W]``.
            kind: ``cls`` (class token), ``mean`` (mean of the patch tokens) or
                ``pooled`` (timm's own head pooling, ``forward_head(pre_logits=True)``).
        """
        if kind == "pooled":
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)
        if self.vit is None:
            raise ValueError(
                f"feature '{kind}' needs a ViT; {type(self.model).__name__} gives 'pooled'"
            )
        tokens = self.encode_visible(x, None)
        if kind == "cls":
            return tokens[:, 0]
        return tokens[:, self.vit.num_prefix_tokens :].mean(dim=1)


def build_encoder(cfg: ModelConfig, *, image_size: int, channels: int) -> Encoder:
    """Build the encoder named by ``cfg`` for images of ``image_size`` and ``channels``.

    Example:
        >>> enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
        >>> enc.grid_hw, enc.embed_dim
        ((4, 4), 96)
    """
    overrides = {k: v for k in VIT_SIZES if (v := getattr(cfg, k)) is not None}
    if cfg.name in ENCODERS:
        if not set(overrides) <= set(ENCODERS.options(cfg.name)):
            _refuse_vit_overrides(overrides, cfg.name)
        model = ENCODERS[cfg.name](image_size=image_size, channels=channels, **overrides)
    else:
        check_timm_name(cfg.name)
        try:
            model = timm.create_model(
                cfg.name,
                pretrained=False,
                img_size=image_size,
                in_chans=channels,
                num_classes=0,
                **overrides,
            )
        except TypeError:  # CNNs take no img_size (nor the ViT size overrides)
            _refuse_vit_overrides(overrides, cfg.name)
            model = timm.create_model(cfg.name, pretrained=False, in_chans=channels, num_classes=0)
    return Encoder(model)


def _refuse_vit_overrides(overrides: Mapping[str, Any], name: str) -> None:
    if overrides:
        raise ConfigError(
            "model", f"{', '.join(overrides)} apply to ViTs only; '{name}' is not one"
        )


def _small_image_resnet(
    *, in_chans: int, layers: tuple[int, ...], widths: tuple[int, ...], stem_width: int
) -> ResNet:
    """A timm ResNet whose stem keeps the resolution: 3x3 conv, stride 1, no max-pool."""
    model = ResNet(
        BasicBlock,
        layers,
        in_chans=in_chans,
        num_classes=0,
        channels=widths,
        stem_type="deep",  # the first stage then takes 2 * stem_width channels
        stem_width=stem_width // 2,
    )
    model.conv1 = nn.Conv2d(in_chans, stem_width, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
