"""The trial configuration: the only seam between ``search`` and ``trainables``.

A trial receives one nested ``dict`` (``"mask/ratio"`` in the space becomes
``config["mask"]["ratio"]``). :meth:`TrialConfig.from_dict` parses it once into
frozen dataclasses; everything downstream takes those, never the raw dict.
Unknown keys are errors that name the key path and the nearest valid key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainables._registry import suggest
from trainables.errors import SSLSearchError, shown

__all__ = [
    "VIT_SIZES",
    "AugConfig",
    "ConfigError",
    "DataConfig",
    "LossConfig",
    "MaskConfig",
    "ModelConfig",
    "OptimConfig",
    "ProbeConfig",
    "TrainConfig",
    "TrialConfig",
    "num_masked",
]


class ConfigError(SSLSearchError, ValueError):
    """A trial configuration that cannot be used; ``path`` is the key path (``a/b/c``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def __reduce__(self) -> tuple:  # Ray pickles a trial's error to the driver
        return (type(self), (self.path, self.message))


def _copy_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    # Plain dicts (not mappingproxy): configs are pickled by Ray and copied.
    return {k: _copy_mapping(v) if isinstance(v, Mapping) else v for k, v in value.items()}


@dataclass(frozen=True)
class DataConfig:
    """Which data source and how it is split.

    Attributes:
        name: registered data source (``digits``, ...).
        val_fraction: share of the images held out as the probe's query set.
        seed: seed of the train/val split.
        options: keyword arguments of the data source.
    """

    name: str = "digits"
    val_fraction: float = 0.25
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def split(self, count: int) -> tuple[int, int]:
        """How many of ``count`` images train and how many are held out (at least one).

        Example:
            >>> DataConfig().split(1797)  # the digits, a quarter held out
            (1348, 449)
        """
        held_out = max(1, round(count * self.val_fraction))
        return count - held_out, held_out


@dataclass(frozen=True)
class ModelConfig:
    """The encoder (a timm model or a named preset) and the MAE decoder.

    ``None`` keeps the preset's value.
    """

    name: str = "vit_digits"
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    decoder_dim: int = 64
    decoder_depth: int = 1
    decoder_heads: int = 4


#: The ``model/`` sizes only a ViT takes (a CNN takes none), in ModelConfig's order.
VIT_SIZES = ("patch_size", "embed_dim", "depth", "num_heads")


def num_masked(num_tokens: int, ratio: float) -> int:
    """The exact number of masked tokens per sample for ``ratio`` (every strategy's).

    Example:
        >>> num_masked(16, 0.47), num_masked(16, 0.5)  # one mask, two ratios
        (8, 8)
    """
    return round(ratio * num_tokens)


@dataclass(frozen=True)
class MaskConfig:
    """Masking strategy, ratio and per-strategy options (``mask/<strategy>/<option>``).

    ``ratio`` is the ratio at the start; ``schedule`` (a
    :data:`~trainables.schedules.RATIO_SCHEDULES` name) takes it to
    ``ratio_end`` (default: ``ratio``) over the trial's steps.
    """

    strategy: str = "random"
    ratio: float = 0.75
    schedule: str = "constant"
    ratio_end: float | None = None
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class AugConfig:
    """Augmentation ops in pipeline order: op name -> its keyword arguments.

    ``view2`` (written ``aug/view2/<op>/<param>``) gives the second view its
    own ops (asymmetric views, as BYOL's); without it every view uses ``ops``.
    """

    ops: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: {"resized_crop": {"min_scale": 0.6}}
    )
    view2: Mapping[str, Mapping[str, Any]] | None = None


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warm-up then cosine decay (per step)."""

    lr: float = 1e-3
    weight_decay: float = 0.05
    batch_size: int = 128
    warmup_epochs: float = 2.0
    min_lr_ratio: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0


@dataclass(frozen=True)
class LossConfig:
    """The SSL objective, its term weights (``loss/weights/<term>``, searchable) and
    its options (``loss/<objective>/<option>``)."""

    name: str = "mae"
    weights: Mapping[str, float] = field(default_factory=dict)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class ProbeConfig:
    """Probes run on frozen features every ``every`` epochs.

    Attributes:
        names: registered probes to run.
        feature: ``cls`` (class token), ``mean`` (mean of patch tokens) or
            ``pooled`` (timm's head pooling: the pooled feature of any timm model).
        every: evaluate every this many epochs (and always after the last).
        options: per-probe keyword arguments (``probe/knn/k``).
    """

    names: tuple[str, ...] = ("knn",)
    feature: str = "cls"
    every: int = 1
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    """Length, seed and device of one trial.

    Attributes:
        epochs: training epochs.
        horizon: the epochs the learning-rate and masking-ratio schedules span
            (default: ``epochs``). A trial of fewer ``epochs`` is then the first part
            of a ``horizon``-epoch run, its learning rate not yet decayed, rather than
            a whole run compressed into ``epochs`` (which favours what converges fast).
        seed: seed of initialisation, masks, augmentation and batch order.
        device: ``auto`` (CUDA when visible), ``cpu`` or ``cuda``.
        threads: torch CPU threads; 0 uses the trial's CPU allocation.
        precision: ``auto`` (bf16 autocast on CUDA when supported, fp32 on CPU),
            ``bf16`` or ``fp32``.
        channels_last: use the channels-last layout for CNN encoders on CUDA.
        compile: ``torch.compile`` the training step.
    """

    epochs: int = 40
    horizon: int | None = None
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False

    @property
    def span(self) -> int:
        """The epochs the schedules are laid out over: ``horizon``, else ``epochs``.

        Example:
            >>> TrainConfig(epochs=30).span, TrainConfig(epochs=30, horizon=60).span
            (30, 60)
        """
        return self.epochs if self.horizon is None else self.horizon


@dataclass(frozen=True)
class TrialConfig:
    """Everything one trial needs, parsed once from the nested config dict.

    Example:
        >>> cfg = TrialConfig.from_dict({"mask": {"ratio": 0.5}, "train": {"epochs": 3}})
        >>> cfg.mask.ratio, cfg.train.epochs, cfg.optim.lr
        (0.5, 3, 0.001)
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> TrialConfig:
        """Parse a nested config (keys and types); raise :class:`ConfigError` on bad input.

        Registry names and options are checked by
        :func:`trainables.validate.parse_trial_config`, which calls this first.
        """
        if not isinstance(config, Mapping):
            raise ConfigError("", f"expected a mapping, got {type(config).__name__}")
        config = dict(config)
        # Sections whose extra keys are named sub-options (mask/block/aspect).
        mask = dict(config.get("mask", {}))
        loss = dict(config.get("loss", {}))
        probe = dict(config.get("probe", {}))
        if "mask" in config:
            own = ("strategy", "ratio", "schedule", "ratio_end", "options")
            config["mask"] = _split_options(mask, own)
        if "loss" in config:
            config["loss"] = _split_options(loss, ("name", "weights", "options"))
        if "probe" in config:
            config["probe"] = _split_options(probe, ("names", "feature", "every", "options"))
        if "aug" in config:
            aug = config["aug"]
            if not isinstance(aug, Mapping):
                raise ConfigError("aug", f"expected a mapping of ops, got {shown(aug)}")
            ops = aug.get("ops", {k: v for k, v in aug.items() if k != "view2"})
            config["aug"] = {"ops": ops, "view2": aug.get("view2")}
        return _build(cls, config, "")

    def to_dict(self) -> dict[str, Any]:
        """The nested plain-dict form (sub-options folded back in), for logs and specs."""
        out = _plain(dataclasses.asdict(self))
        for section in ("mask", "loss", "probe"):
            out[section].update(out[section].pop("options"))
        view2 = out["aug"]["view2"]
        out["aug"] = out["aug"]["ops"]
        if view2 is not None:
            out["aug"]["view2"] = view2
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def _split_options(section: dict[str, Any], own: tuple[str, ...]) -> dict[str, Any]:
    """Move every key that is not one of the section's own fields into ``options``."""
    out = {k: v for k, v in section.items() if k in own}
    options = dict(out.get("options", {}))
    options.update({k: v for k, v in section.items() if k not in own})
    out["options"] = options
    return out


def _build(cls: type, values: Mapping[str, Any], path: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        key_path = f"{path}/{key}" if path else str(key)
        if key not in fields:
            raise ConfigError(
                key_path,
                f"unknown key{suggest(str(key), list(fields))}; valid: {', '.join(fields)}",
            )
        kwargs[key] = _coerce(hints[key], value, key_path)
    return cls(**kwargs)


def _is_int(value: Any) -> bool:
    return not isinstance(value, bool) and (
        isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    )


#: Scalar field types: (accepts the value, converts it, what the message says was expected).
_SCALARS: dict[type, tuple[Any, Any, str]] = {
    float: (
        lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        float,
        "a number",
    ),
    int: (_is_int, int, "an integer"),
    str: (lambda v: isinstance(v, str), str, "a string"),
    bool: (lambda v: isinstance(v, bool), bool, "true or false"),
}


def _coerce(hint: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the field's type hint and convert it; ConfigError otherwise."""
    if dataclasses.is_dataclass(hint):
        return _build(hint, _mapping(value, path), path)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        return _coerce(next(a for a in args if a is not type(None)), value, path)
    if hint in _SCALARS:
        accepts, convert, expected = _SCALARS[hint]
        if not accepts(value):
            raise ConfigError(path, f"expected {expected}, got {shown(value)}")
        return convert(value)
    if origin is tuple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ConfigError(path, f"expected a list, got {shown(value)}")
        inner = typing.get_args(hint)[0]
        return tuple(_coerce(inner, v, f"{path}[{i}]") for i, v in enumerate(items))
    if origin in (Mapping, dict) or hint is Mapping:
        return _copy_mapping(_mapping(value, path))
    return value


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected a mapping, got {shown(value)}")
    return value
