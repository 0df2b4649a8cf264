"""SSL objectives: weighted sums of pure loss terms.

Two registries:

- :data:`LOSS_TERMS`: pure functions of tensors -> scalar tensor.
- :data:`OBJECTIVES`: factories ``(encoder, *, channels, model_cfg, **options) ->
  Objective``. An objective owns its extra modules (an MAE decoder, a
  projection head), says how many augmented views it needs, and maps the
  views and a mask sampler to ``{"loss": total, "<term>": value, ...}``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.models.vision_transformer import Block
from torch import nn

from trainables._registry import make_register
from trainables.config import ConfigError, ModelConfig
from trainables.encoders import Encoder

__all__ = [
    "LOSS_TERMS",
    "OBJECTIVES",
    "MAEObjective",
    "Objective",
    "mae_reconstruction",
    "patchify",
    "register_loss_term",
    "register_objective",
]

LOSS_TERMS: dict[str, Callable[..., torch.Tensor]] = {}
register_loss_term = make_register(LOSS_TERMS, "loss_term")
OBJECTIVES: dict[str, Callable[..., Objective]] = {}
register_objective = make_register(OBJECTIVES, "objective")

MaskSampler = Callable[[int], torch.Tensor]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, L, p*p*C]`` in row-major patch order (as timm's PatchEmbed)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not divisible by patch size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


@register_loss_term("mae_reconstruction")
def mae_reconstruction(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *, norm_pix: bool = False
) -> torch.Tensor:
    """Mean squared error on masked patches only (MAE, He et al. 2022).

    Args:
        pred: ``[B, L, P]`` predicted patches.
        target: ``[B, L, P]`` true patches.
        mask: bool ``[B, L]``, True where the patch was hidden from the encoder.
        norm_pix: normalise each target patch by its own mean and variance.
    """
    if pred.shape != target.shape or pred.shape[:2] != mask.shape:
        raise ValueError(
            f"shape mismatch: pred {tuple(pred.shape)}, target {tuple(target.shape)}, "
            f"mask {tuple(mask.shape)}"
        )
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)
    weight = mask.to(per_patch.dtype)
    return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)


class Objective(nn.Module):
    """Base of objectives: ``num_views`` views in, a dict of scalar tensors out."""

    num_views: int = 1

    def forward(  # pragma: no cover - interface
        self, views: list[torch.Tensor], sample_mask: MaskSampler
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class MAEObjective(Objective):
    """Masked autoencoder: encode visible tokens, decode all, reconstruct masked pixels."""

    num_views = 1

    def __init__(
        self,
        encoder: Encoder,
        *,
        channels: int,
        decoder_dim: int,
        decoder_depth: int,
        decoder_heads: int,
        norm_pix: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.norm_pix = norm_pix
        num_tokens = encoder.num_tokens
        self.decoder_embed = nn.Linear(encoder.embed_dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_pos = nn.Parameter(torch.zeros(1, 1 + num_tokens, decoder_dim))
        self.decoder_blocks = nn.Sequential(
            *[Block(decoder_dim, decoder_heads, qkv_bias=True) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, encoder.patch_size**2 * channels)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.decoder_pos, std=0.02)

    def decode(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predict every patch from the visible-token latent ``[B, 1+Lv, D]``."""
        x = self.decoder_embed(latent)
        batch, length = mask.shape
        full = self.mask_token.expand(batch, length, -1).clone()
        full[~mask] = x[:, 1:].reshape(-1, x.shape[-1])
        x = torch.cat([x[:, :1], full], dim=1) + self.decoder_pos
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x[:, 1:])

    def forward(
        self, views: list[torch.Tensor], sample_mask: MaskSampler
    ) -> dict[str, torch.Tensor]:
        images = views[0]
        mask = sample_mask(images.shape[0])
        latent = self.encoder.encode_visible(images, mask)
        pred = self.decode(latent, mask)
        target = patchify(images, self.encoder.patch_size)
        loss = mae_reconstruction(pred, target, mask, norm_pix=self.norm_pix)
        return {"loss": loss, "mae_reconstruction": loss.detach()}


@register_objective("mae")
def mae(
    encoder: Encoder, *, channels: int, model_cfg: ModelConfig, norm_pix: bool = False
) -> Objective:
    """MAE with a small transformer decoder sized by ``model/decoder_*``."""
    if not encoder.is_vit:
        raise ConfigError(
            "model/name",
            f"{type(encoder.model).__name__} is not a VisionTransformer; MAE needs a ViT",
        )
    return MAEObjective(
        encoder,
        channels=channels,
        decoder_dim=model_cfg.decoder_dim,
        decoder_depth=model_cfg.decoder_depth,
        decoder_heads=model_cfg.decoder_heads,
        norm_pix=norm_pix,
    )
