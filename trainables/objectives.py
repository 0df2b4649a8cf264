"""SSL objectives: weighted sums of pure loss terms.

Two registries:

- :data:`LOSS_TERMS`: pure functions of tensors -> scalar tensor, each tested
  against a reference formula written independently in ``tests/``.
- :data:`OBJECTIVES`: factories ``(encoder, *, channels, model_cfg, weights,
  **options) -> Objective``. An objective owns its extra modules (an MAE
  decoder, a projection head), says how many augmented views it needs, and
  maps the views and a mask sampler to ``{"loss": weighted total,
  "loss_<term>": unweighted term, ...}``. The term weights
  (``loss/weights/<term>``) are searchable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import Block
from torch import nn

from trainables._registry import Registry, suggest
from trainables.config import ConfigError, ModelConfig
from trainables.encoders import Encoder

__all__ = [
    "LOSS_TERMS",
    "OBJECTIVES",
    "MAEObjective",
    "Objective",
    "TwoViewObjective",
    "barlow_off_diagonal",
    "barlow_on_diagonal",
    "info_nce",
    "mae_reconstruction",
    "objective_weights",
    "patchify",
    "projector",
    "register_loss_term",
    "register_objective",
    "vicreg_covariance",
    "vicreg_invariance",
    "vicreg_variance",
]

#: Pure loss terms: tensors in, a scalar out (tested against reference formulas).
LOSS_TERMS: Registry[Callable[..., torch.Tensor]] = Registry("loss term")
register_loss_term = LOSS_TERMS.register
#: Objectives: ``(encoder, *, channels, model_cfg, weights, **options) -> Objective``.
OBJECTIVES: Registry[Callable[..., Objective]] = Registry(
    "objective", reserved=("encoder", "channels", "model_cfg", "weights")
)


def register_objective(
    name: str, *, objective: type[Objective], limits: Mapping[str, Any] | None = None
) -> Callable:
    """Register an objective factory; its searchable term weights are ``objective``'s
    ``default_weights`` (``loss/weights/<term>``), recorded with the entry; ``limits``
    bound its options (see :meth:`~trainables._registry.Registry.register`)."""
    return OBJECTIVES.register(
        name,
        limits=limits,
        weights=dict(objective.default_weights),
        masks=objective.masks_tokens,
    )


def objective_weights(name: str) -> dict[str, float]:
    """The term weights of objective ``name`` and their defaults.

    Example:
        >>> objective_weights("vicreg")
        {'invariance': 25.0, 'variance': 25.0, 'covariance': 1.0}
    """
    return dict(OBJECTIVES.meta(name)["weights"])


#: ``images [B, C, H, W] -> bool [B, L]``: masks for the view about to be encoded (a
#: strategy may look at the images through the encoder, e.g. its attention).
MaskSampler = Callable[[torch.Tensor], torch.Tensor]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W]`` -> ``[B, L, p*p*C]`` in row-major patch order (as timm's PatchEmbed)."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not divisible by patch size {p}")
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def _pair(z1: torch.Tensor, z2: torch.Tensor, name: str) -> None:
    if z1.ndim != 2 or z1.shape != z2.shape:
        raise ValueError(
            f"{name} needs two [batch, dim] embeddings of the same shape, "
            f"got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] < 2:
        raise ValueError(f"{name} needs a batch of at least 2, got {z1.shape[0]}")


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
        if target.shape[-1] < 2:  # one value has no (unbiased) variance: NaN, not a loss
            raise ValueError("norm_pix needs patches of at least 2 values, got 1")
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1e-6).sqrt()
    per_patch = (pred - target).pow(2).mean(dim=-1)
    weight = mask.to(per_patch.dtype)
    return (per_patch * weight).sum() / weight.sum().clamp_min(1.0)


@register_loss_term("info_nce")
def info_nce(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent: each of the 2N embeddings must pick its pair among the other 2N-1.

    Cosine similarities divided by ``temperature``; mean over all 2N anchors.
    """
    _pair(z1, z2, "info_nce")
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, targets)


@register_loss_term("vicreg_invariance")
def vicreg_invariance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg's invariance term: mean squared distance between paired embeddings."""
    _pair(z1, z2, "vicreg_invariance")
    return F.mse_loss(z1.float(), z2.float())


@register_loss_term("vicreg_variance")
def vicreg_variance(
    z1: torch.Tensor, z2: torch.Tensor, *, gamma: float = 1.0, eps: float = 1e-4
) -> torch.Tensor:
    """VICReg's variance term: hinge on each dimension's std, averaged over both branches."""
    _pair(z1, z2, "vicreg_variance")

    def hinge(z: torch.Tensor) -> torch.Tensor:
        std = (z.float().var(dim=0) + eps).sqrt()
        return F.relu(gamma - std).mean()

    return (hinge(z1) + hinge(z2)) / 2


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    return m[~torch.eye(m.shape[0], dtype=torch.bool, device=m.device)]


@register_loss_term("vicreg_covariance")
def vicreg_covariance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term: squared off-diagonal covariances / dim, summed over branches."""
    _pair(z1, z2, "vicreg_covariance")

    def cov_term(z: torch.Tensor) -> torch.Tensor:
        z = z.float() - z.float().mean(dim=0)
        cov = z.T @ z / (z.shape[0] - 1)
        return _off_diagonal(cov).pow(2).sum() / z.shape[1]

    return cov_term(z1) + cov_term(z2)


def _cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    def standardise(z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        return (z - z.mean(dim=0)) / (z.var(dim=0, unbiased=False) + 1e-5).sqrt()

    return standardise(z1).T @ standardise(z2) / z1.shape[0]


@register_loss_term("barlow_on_diagonal")
def barlow_on_diagonal(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Barlow Twins' invariance: ``sum_i (1 - C_ii)^2`` of the cross-correlation matrix."""
    _pair(z1, z2, "barlow_on_diagonal")
    return (torch.diagonal(_cross_correlation(z1, z2)) - 1).pow(2).sum()


@register_loss_term("barlow_off_diagonal")
def barlow_off_diagonal(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Barlow Twins' redundancy reduction: ``sum_{i != j} C_ij^2``."""
    _pair(z1, z2, "barlow_off_diagonal")
    return _off_diagonal(_cross_correlation(z1, z2)).pow(2).sum()


class Objective(nn.Module):
    """Base of objectives: ``num_views`` views in, weighted terms out.

    Subclasses set ``num_views`` and ``default_weights`` and implement
    :meth:`terms`; :meth:`forward` weights and sums them. ``masks_tokens``: the
    objective hides patch tokens (it needs a ViT, and ``mask/`` applies to it).
    """

    num_views: int = 1
    masks_tokens: ClassVar[bool] = False
    default_weights: ClassVar[Mapping[str, float]] = {}

    def __init__(self, encoder: Encoder, weights: Mapping[str, float] | None) -> None:
        super().__init__()
        self.encoder = encoder
        self.weights = {**self.default_weights, **dict(weights or {})}
        unknown = set(self.weights) - set(self.default_weights)
        if unknown:
            name = sorted(unknown)[0]
            valid = list(self.default_weights)
            raise ConfigError(
                f"loss/weights/{name}",
                f"unknown term{suggest(name, valid)}; this objective's terms: {', '.join(valid)}",
            )

    def terms(
        self, views: list[torch.Tensor], sample_mask: MaskSampler
    ) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(
        self, views: list[torch.Tensor], sample_mask: MaskSampler
    ) -> dict[str, torch.Tensor]:
        terms = self.terms(views, sample_mask)
        total = sum(self.weights[name] * value for name, value in terms.items())
        out = {"loss": total}
        out.update({f"loss_{name}": value.detach() for name, value in terms.items()})
        return out


def projector(in_dim: int, hidden: int, out: int, *, layers: int = 2) -> nn.Sequential:
    """An MLP head (Linear-BN-ReLU blocks, then Linear), as in SimCLR/VICReg/Barlow Twins."""
    modules: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers - 1):
        modules += [nn.Linear(dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
        dim = hidden
    modules.append(nn.Linear(dim, out))
    return nn.Sequential(*modules)


class MAEDecoder(nn.Module):
    """MAE's light decoder: mask tokens at the hidden positions, a few blocks, pixels out."""

    def __init__(self, encoder: Encoder, *, channels: int, model_cfg: ModelConfig) -> None:
        super().__init__()
        dim = model_cfg.decoder_dim
        self.embed = nn.Linear(encoder.embed_dim, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, 1 + encoder.num_tokens, dim))
        self.blocks = nn.Sequential(
            *[
                Block(dim, model_cfg.decoder_heads, qkv_bias=True)
                for _ in range(model_cfg.decoder_depth)
            ]
        )
        self.norm = nn.LayerNorm(dim)
        self.pred = nn.Linear(dim, encoder.patch_size**2 * channels)
        nn.init.normal_(self.mask_token, std=0.02)
        nn.init.normal_(self.pos, std=0.02)

    def forward(self, latent: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Predict every patch from the visible-token latent ``[B, 1+Lv, D]``."""
        x = self.embed(latent)
        batch, length = mask.shape
        dim = x.shape[-1]
        keep = (~mask).nonzero(as_tuple=False)[:, 1].view(batch, -1)
        tokens = self.mask_token.to(x.dtype).expand(batch, length, dim)
        full = tokens.scatter(1, keep.unsqueeze(-1).expand(-1, -1, dim), x[:, 1:])
        x = torch.cat([x[:, :1], full], dim=1) + self.pos
        return self.pred(self.norm(self.blocks(x))[:, 1:])


def _need_vit(encoder: Encoder, objective: str) -> None:
    if not encoder.is_vit:
        raise ConfigError(
            "model/name",
            f"{type(encoder.model).__name__} is not a VisionTransformer; {objective} needs a ViT",
        )


class MAEObjective(Objective):
    """Masked autoencoder: encode visible tokens, decode all, reconstruct masked pixels."""

    num_views = 1
    masks_tokens = True
    default_weights: ClassVar[Mapping[str, float]] = {"reconstruction": 1.0}

    def __init__(
        self,
        encoder: Encoder,
        *,
        channels: int,
        model_cfg: ModelConfig,
        weights: Mapping[str, float] | None = None,
        norm_pix: bool = False,
    ) -> None:
        super().__init__(encoder, weights)
        _need_vit(encoder, "MAE")
        self.norm_pix = norm_pix
        self.decoder = MAEDecoder(encoder, channels=channels, model_cfg=model_cfg)

    def reconstruct(self, images: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        latent = self.encoder.encode_visible(images, mask)
        pred = self.decoder(latent, mask)
        target = patchify(images, self.encoder.patch_size)
        return mae_reconstruction(pred, target, mask, norm_pix=self.norm_pix), latent

    def terms(self, views: list[torch.Tensor], sample_mask: MaskSampler) -> dict:
        images = views[0]
        loss, _ = self.reconstruct(images, sample_mask(images))
        return {"reconstruction": loss}


class TwoViewObjective(Objective):
    """Two augmented views -> pooled encoder features -> projection head -> a pair loss."""

    num_views = 2

    def __init__(
        self,
        encoder: Encoder,
        *,
        weights: Mapping[str, float] | None,
        proj_hidden: int,
        proj_dim: int,
        proj_layers: int = 2,
    ) -> None:
        super().__init__(encoder, weights)
        self.head = projector(encoder.embed_dim, proj_hidden, proj_dim, layers=proj_layers)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.features(x, "pooled"))


class SimCLRObjective(TwoViewObjective):
    """SimCLR: InfoNCE between the projected views."""

    default_weights: ClassVar[Mapping[str, float]] = {"contrastive": 1.0}

    def __init__(self, encoder: Encoder, *, temperature: float = 0.1, **kwargs) -> None:
        super().__init__(encoder, **kwargs)
        self.temperature = temperature

    def terms(self, views: list[torch.Tensor], sample_mask: MaskSampler) -> dict:
        z1, z2 = self.embed(views[0]), self.embed(views[1])
        return {"contrastive": info_nce(z1, z2, temperature=self.temperature)}


class VICRegObjective(TwoViewObjective):
    """VICReg: invariance, variance and covariance terms (weights 25 / 25 / 1 by default)."""

    default_weights: ClassVar[Mapping[str, float]] = {
        "invariance": 25.0,
        "variance": 25.0,
        "covariance": 1.0,
    }

    def terms(self, views: list[torch.Tensor], sample_mask: MaskSampler) -> dict:
        z1, z2 = self.embed(views[0]), self.embed(views[1])
        return {
            "invariance": vicreg_invariance(z1, z2),
            "variance": vicreg_variance(z1, z2),
            "covariance": vicreg_covariance(z1, z2),
        }


class BarlowTwinsObjective(TwoViewObjective):
    """Barlow Twins: on-diagonal invariance + off-diagonal redundancy (weight 0.0051)."""

    default_weights: ClassVar[Mapping[str, float]] = {"on_diagonal": 1.0, "off_diagonal": 0.0051}

    def terms(self, views: list[torch.Tensor], sample_mask: MaskSampler) -> dict:
        z1, z2 = self.embed(views[0]), self.embed(views[1])
        return {
            "on_diagonal": barlow_on_diagonal(z1, z2),
            "off_diagonal": barlow_off_diagonal(z1, z2),
        }


class HybridObjective(MAEObjective):
    """Contrastive masked autoencoding: two differently masked views of each image.

    Both views are reconstructed (MAE); the class tokens of their visible-token
    encodings are projected and pulled together with InfoNCE, in the style of
    contrastive masked autoencoders (CMAE, Point-CMAE's double masking).
    """

    num_views = 2
    default_weights: ClassVar[Mapping[str, float]] = {"reconstruction": 1.0, "contrastive": 0.1}

    def __init__(
        self,
        encoder: Encoder,
        *,
        channels: int,
        model_cfg: ModelConfig,
        weights: Mapping[str, float] | None = None,
        norm_pix: bool = False,
        temperature: float = 0.1,
        proj_hidden: int = 256,
        proj_dim: int = 128,
    ) -> None:
        super().__init__(
            encoder, channels=channels, model_cfg=model_cfg, weights=weights, norm_pix=norm_pix
        )
        self.temperature = temperature
        self.head = projector(encoder.embed_dim, proj_hidden, proj_dim)

    def terms(self, views: list[torch.Tensor], sample_mask: MaskSampler) -> dict:
        rec1, lat1 = self.reconstruct(views[0], sample_mask(views[0]))
        rec2, lat2 = self.reconstruct(views[1], sample_mask(views[1]))
        z1, z2 = self.head(lat1[:, 0]), self.head(lat2[:, 0])
        return {
            "reconstruction": (rec1 + rec2) / 2,
            "contrastive": info_nce(z1, z2, temperature=self.temperature),
        }


@register_objective("mae", objective=MAEObjective)
def mae(
    encoder: Encoder,
    *,
    channels: int,
    model_cfg: ModelConfig,
    weights: Mapping[str, float] | None = None,
    norm_pix: bool = False,
) -> Objective:
    """MAE with a small transformer decoder sized by ``model/decoder_*``; option ``norm_pix``."""
    return MAEObjective(
        encoder, channels=channels, model_cfg=model_cfg, weights=weights, norm_pix=norm_pix
    )


@register_objective(
    "simclr",
    objective=SimCLRObjective,
    limits={"temperature": "(0, inf)", "proj_hidden": "[1, inf)", "proj_dim": "[1, inf)"},
)
def simclr(
    encoder: Encoder,
    *,
    channels: int,
    model_cfg: ModelConfig,
    weights: Mapping[str, float] | None = None,
    temperature: float = 0.1,
    proj_hidden: int = 256,
    proj_dim: int = 128,
) -> Objective:
    """SimCLR (InfoNCE, option ``temperature``); works with any timm encoder."""
    return SimCLRObjective(
        encoder,
        weights=weights,
        temperature=temperature,
        proj_hidden=proj_hidden,
        proj_dim=proj_dim,
    )


@register_objective(
    "vicreg", objective=VICRegObjective, limits={"proj_hidden": "[1, inf)", "proj_dim": "[1, inf)"}
)
def vicreg(
    encoder: Encoder,
    *,
    channels: int,
    model_cfg: ModelConfig,
    weights: Mapping[str, float] | None = None,
    proj_hidden: int = 256,
    proj_dim: int = 256,
) -> Objective:
    """VICReg with a 3-layer expander; weights ``invariance``, ``variance``, ``covariance``."""
    return VICRegObjective(
        encoder, weights=weights, proj_hidden=proj_hidden, proj_dim=proj_dim, proj_layers=3
    )


@register_objective(
    "barlow_twins",
    objective=BarlowTwinsObjective,
    limits={"proj_hidden": "[1, inf)", "proj_dim": "[1, inf)"},
)
def barlow_twins(
    encoder: Encoder,
    *,
    channels: int,
    model_cfg: ModelConfig,
    weights: Mapping[str, float] | None = None,
    proj_hidden: int = 256,
    proj_dim: int = 256,
) -> Objective:
    """Barlow Twins; the searchable ``off_diagonal`` weight is the paper's lambda."""
    return BarlowTwinsObjective(
        encoder, weights=weights, proj_hidden=proj_hidden, proj_dim=proj_dim, proj_layers=3
    )


@register_objective(
    "hybrid",
    objective=HybridObjective,
    limits={"temperature": "(0, inf)", "proj_hidden": "[1, inf)", "proj_dim": "[1, inf)"},
)
def hybrid(
    encoder: Encoder,
    *,
    channels: int,
    model_cfg: ModelConfig,
    weights: Mapping[str, float] | None = None,
    norm_pix: bool = False,
    temperature: float = 0.1,
    proj_hidden: int = 256,
    proj_dim: int = 128,
) -> Objective:
    """MAE + contrastive on two differently masked views; weights ``reconstruction``,
    ``contrastive``; options ``temperature``, ``norm_pix``."""
    return HybridObjective(
        encoder,
        channels=channels,
        model_cfg=model_cfg,
        weights=weights,
        norm_pix=norm_pix,
        temperature=temperature,
        proj_hidden=proj_hidden,
        proj_dim=proj_dim,
    )
