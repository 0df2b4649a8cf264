"""What the images and the encoder must be for each other: the image geometry a
data source declares, a ViT's patch against it, widths against attention heads,
and whether a timm encoder builds at all (on the meta device: no memory, no weights).

Each check raises its :class:`~trainables.config.ConfigError`; :mod:`trainables.validate`
runs them on every trial config, and against the decoded data where the source
declares nothing (:func:`trainables.validate.dataset_problems`). Importing this
module imports no torch; building a timm model does.

Example:
    >>> from trainables.config import TrialConfig
    >>> cfg = TrialConfig.from_dict({"model": {"name": "vit_tiny_patch16_224"}})
    >>> check_builds(cfg, 8, 1)  # the digits: 8x8, one channel  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    trainables.config.ConfigError: model/patch_size: patch size 16 does not tile the 8x8 ...
"""

from __future__ import annotations

import functools
from typing import Any

from trainables.catalogue import Catalogue, live
from trainables.config import VIT_SIZES, ConfigError, ModelConfig, TrialConfig

__all__ = [
    "check_builds",
    "check_encoder_fits_images",
    "check_geometry",
    "check_heads",
    "check_patch",
    "declared_count",
    "preset_patch",
    "token_count",
]


def _vit_geometry(cfg: TrialConfig, cat: Catalogue) -> tuple[Any, Any, int] | None:
    """A preset ViT's ``(image size, channels, patch)`` on data that declares its
    geometry (a size or channel count the options leave open is None); None for
    any other encoder or data."""
    declared, patch = _declared_geometry(cfg, cat), preset_patch(cfg, cat)
    if declared is None or patch is None:
        return None  # (a size given to a CNN is refused in validate())
    return *declared, patch


def _declared_geometry(cfg: TrialConfig, cat: Catalogue) -> tuple[Any, Any] | None:
    """``(image size, channels)`` where the data source declares them (None: an option
    left open); None when it declares nothing (a file, a folder: known once decoded)."""
    geometry = cat.entry("data", cfg.data.name).meta.get("geometry")
    if not geometry:
        return None
    return _declared(cfg, cat, geometry["image_size"]), _declared(cfg, cat, geometry["channels"])


def declared_count(cfg: TrialConfig, cat: Catalogue) -> Any:
    """How many images the data source declares (``count=`` at its registration);
    None when it does not, or an option leaves it open.

    Example:
        >>> from trainables.config import TrialConfig
        >>> declared_count(TrialConfig.from_dict({"data": {"name": "shapes"}}), live())
        2000
    """
    return _declared(cfg, cat, cat.entry("data", cfg.data.name).meta.get("count"))


def _declared(cfg: TrialConfig, cat: Catalogue, fact: Any) -> Any:
    """A fact a source declares: a number, or the name of the option that sets it
    (the config's value, else the source's default)."""
    if not isinstance(fact, str):
        return fact
    return cfg.data.options.get(fact, cat.entry("data", cfg.data.name).options.get(fact))


def token_count(cfg: TrialConfig, *, catalogue: Catalogue | None = None) -> int | None:
    """The patch tokens of a preset ViT on data of a declared size (None: not known
    without building the model).

    Example:
        >>> from trainables.config import TrialConfig
        >>> token_count(TrialConfig.from_dict({"model": {"name": "vit_digits"}}))  # 8x8, 2x2
        16
    """
    found = _vit_geometry(cfg, catalogue or live())
    if found is None or not isinstance(found[0], int) or found[0] % found[2]:
        return None
    return (found[0] // found[2]) ** 2


def check_geometry(cfg: TrialConfig, cat: Catalogue) -> None:
    """A ViT's patch must tile the images (when the source says their size): a
    preset's patch is known; a timm model is built to know it (:func:`check_builds`)."""
    declared = _declared_geometry(cfg, cat)
    if declared is not None:
        check_encoder_fits_images(cfg, cat, *declared)


def check_encoder_fits_images(cfg: TrialConfig, cat: Catalogue, size: Any, channels: Any) -> None:
    """A preset ViT's patch against images of ``size`` (None: not known); a timm model,
    built to know its patch, where both are known (a preset may load its own weights,
    which the meta device cannot)."""
    patch = preset_patch(cfg, cat)
    if patch is not None:
        check_patch(cfg, size, channels, patch)
    elif cfg.model.name not in cat.names("encoder") and all(
        isinstance(v, int) for v in (size, channels)
    ):
        check_builds(cfg, size, channels)


def check_patch(cfg: TrialConfig, size: Any, channels: Any, patch: int) -> None:
    """A preset ViT's patch must tile images of ``size`` (None: not known), and
    ``norm_pix`` needs patches of more than one value (a 1x1 patch of one channel has
    no variance: its normalised target is NaN)."""
    if isinstance(size, int) and size % patch:
        raise ConfigError(
            "model/patch_size",
            f"patch size {patch} does not tile the {size}x{size} images of data "
            f"'{cfg.data.name}'; use a divisor of {size}",
        )
    norm_pix = cfg.loss.options.get(cfg.loss.name, {}).get("norm_pix")
    if norm_pix is True and isinstance(channels, int) and patch * patch * channels < 2:
        raise ConfigError(
            f"loss/{cfg.loss.name}/norm_pix",
            f"normalises each target patch by its variance, but a {patch}x{patch} patch "
            f"(model/patch_size {patch}) of {channels} channel has one value; "
            "use patch_size >= 2 or norm_pix: false",
        )


def check_builds(cfg: TrialConfig, size: int, channels: int) -> None:
    """The encoder builds for these images with the sizes given, and a ViT's patch
    tiles them: a timm ViT's patch, and a width its heads do not split, are known
    only to timm (built on the meta device: no memory, no weights)."""
    found = _build_problem(cfg.model, size, channels)
    if isinstance(found, int):
        check_patch(cfg, size, channels, found)
    elif found is not None:
        raise ConfigError("model", found)


@functools.lru_cache(maxsize=256)
def _build_problem(model: ModelConfig, size: int, channels: int) -> str | int | None:
    """Why the encoder cannot be built for ``size``-pixel images; else its patch size
    if it is a ViT (None if not)."""
    import torch

    from trainables.encoders import build_encoder

    try:
        with torch.device("meta"):
            encoder = build_encoder(model, image_size=size, channels=channels)
    except (AssertionError, ValueError, TypeError, RuntimeError) as err:
        if isinstance(err, ConfigError):
            return err.message if err.path == "model" else str(err)
        if "meta" in str(err):  # a model that cannot be built without memory: not known
            return None
        sizes = {k: v for k in VIT_SIZES if (v := getattr(model, k)) is not None}
        return (
            f"timm cannot build '{model.name}' for {size}x{size} images of {channels} "
            f"channel(s){f' with {sizes}' if sizes else ''}: {err or type(err).__name__}"
        )
    return encoder.patch_size if encoder.is_vit else None


def preset_patch(cfg: TrialConfig, cat: Catalogue) -> int | None:
    """A preset ViT's patch size (the config's or the preset's); None for other encoders."""
    if cfg.model.name not in cat.names("encoder"):
        return None
    preset = cat.entry("encoder", cfg.model.name).options.get("patch_size")
    return (cfg.model.patch_size or preset) if isinstance(preset, int) else None


def check_heads(cfg: TrialConfig, cat: Catalogue) -> None:
    """A preset ViT's width, and MAE's decoder width, must split into its heads."""
    widths = []
    if cfg.model.name in cat.names("encoder"):
        preset = cat.entry("encoder", cfg.model.name).options
        dim, heads = cfg.model.embed_dim or preset.get("embed_dim"), cfg.model.num_heads
        heads = heads or preset.get("num_heads")
        if isinstance(dim, int) and isinstance(heads, int):
            widths.append(("embed_dim", dim, "num_heads", heads))
    if cat.entry("objective", cfg.loss.name).meta.get("masks"):
        widths.append(
            ("decoder_dim", cfg.model.decoder_dim, "decoder_heads", cfg.model.decoder_heads)
        )
    for width_key, width, heads_key, heads in widths:
        if width % heads:  # at the heads when the space gives them, else at the width
            given = getattr(cfg.model, heads_key) is not None and heads_key == "num_heads"
            raise ConfigError(
                f"model/{heads_key if given else width_key}",
                f"{width_key} {width} does not split into {heads} attention heads "
                f"(model/{heads_key}); use a width that is a multiple of the heads",
            )
