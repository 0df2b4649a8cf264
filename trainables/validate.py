"""Validation of a parsed trial config against the registries.

:func:`parse_trial_config` is what a trial (and ``spaces check``) calls:
:meth:`TrialConfig.from_dict` parses keys and types, then every registry name
(data source, encoder, masking strategy, augmentation op, objective, probe)
and every option of the chosen entries is checked against the registered
function's signature. :mod:`trainables.config` stays a leaf; this module is
the one that knows every registry.

Example:
    >>> parse_trial_config({"mask": {"strategy": "random", "ratio": 0.5}}).mask.ratio
    0.5
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from trainables import augment, data, encoders, masking, objectives, probes
from trainables._registry import UnknownNameError, lookup, suggest
from trainables.config import ConfigError, TrialConfig

__all__ = ["check_options", "parse_trial_config", "validate"]

# Arguments a registry passes itself: never options a spec may set.
_RESERVED = {
    "objective": ("encoder", "channels", "model_cfg", "weights"),
    "masking": ("batch", "grid_hw", "ratio", "generator"),
    "augmentation op": ("image_size", "channels"),
    "probe": ("train_feats", "train_labels", "val_feats", "val_labels", "views"),
}


def parse_trial_config(config: Mapping[str, Any]) -> TrialConfig:
    """Parse a nested trial config and check it against the registries.

    Raises:
        ConfigError: naming the key path and what was expected.
    """
    cfg = TrialConfig.from_dict(config)
    validate(cfg)
    return cfg


def check_options(fn: Any, given: Any, path: str, *, skip: tuple[str, ...]) -> None:
    """Refuse options that ``fn`` does not take, naming the key and the valid ones."""
    if not isinstance(given, Mapping):
        raise ConfigError(path, f"expected a mapping of options, got {given!r}")
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    valid = [name for name in params if name not in skip]
    for key in given:
        if key not in valid:
            raise ConfigError(
                f"{path}/{key}",
                f"unknown option{suggest(str(key), valid)}; valid: {', '.join(valid) or 'none'}",
            )


def _entry(registry: dict, kind: str, name: str, path: str) -> Any:
    try:
        return lookup(registry, kind, name)
    except UnknownNameError as err:
        raise ConfigError(path, str(err)) from None


def validate(cfg: TrialConfig) -> None:
    """Check registry names and option keys of ``cfg``; raise :class:`ConfigError`."""
    _entry(data.DATA_SOURCES, "data source", cfg.data.name, "data/name")
    if cfg.model.name not in encoders.PRESETS:
        encoders.check_timm_name(cfg.model.name)
    _check_mask(cfg)
    _check_aug(cfg)
    _check_loss(cfg)
    _check_probes(cfg)
    _check_ranges(cfg)


def _check_mask(cfg: TrialConfig) -> None:
    fn = _entry(masking.MASKING, "masking strategy", cfg.mask.strategy, "mask/strategy")
    for name in cfg.mask.options:
        _entry(masking.MASKING, "masking strategy", name, f"mask/{name}")
    if not 0.0 <= cfg.mask.ratio <= 0.95:
        raise ConfigError("mask/ratio", f"expected a value in [0, 0.95], got {cfg.mask.ratio}")
    given = cfg.mask.options.get(cfg.mask.strategy, {})
    check_options(fn, given, f"mask/{cfg.mask.strategy}", skip=_RESERVED["masking"])


def _check_aug(cfg: TrialConfig) -> None:
    for ops, prefix in ((cfg.aug.ops, "aug"), (cfg.aug.view2 or {}, "aug/view2")):
        for name in ops:
            _entry(augment.AUGMENT_OPS, "augmentation op", name, f"{prefix}/{name}")
    for ops, prefix in ((cfg.aug.ops, "aug"), (cfg.aug.view2 or {}, "aug/view2")):
        for name, params in ops.items():
            fn = augment.AUGMENT_OPS[name]
            check_options(fn, params, f"{prefix}/{name}", skip=_RESERVED["augmentation op"])


def _check_loss(cfg: TrialConfig) -> None:
    fn = _entry(objectives.OBJECTIVES, "objective", cfg.loss.name, "loss/name")
    for name in cfg.loss.options:
        _entry(objectives.OBJECTIVES, "objective", name, f"loss/{name}")
    terms = list(objectives.OBJECTIVE_WEIGHTS.get(cfg.loss.name, {}))
    for term, weight in cfg.loss.weights.items():
        if term not in terms:
            raise ConfigError(
                f"loss/weights/{term}",
                f"'{cfg.loss.name}' has no term '{term}'{suggest(term, terms)}; "
                f"its terms: {', '.join(terms)}",
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise ConfigError(f"loss/weights/{term}", f"expected a number >= 0, got {weight!r}")
    given = cfg.loss.options.get(cfg.loss.name, {})
    check_options(fn, given, f"loss/{cfg.loss.name}", skip=_RESERVED["objective"])


def _check_probes(cfg: TrialConfig) -> None:
    for i, name in enumerate(cfg.probe.names):
        fn = _entry(probes.PROBES, "probe", name, f"probe/names[{i}]")
        given = cfg.probe.options.get(name, {})
        check_options(fn, given, f"probe/{name}", skip=_RESERVED["probe"])
    for name in cfg.probe.options:
        _entry(probes.PROBES, "probe", name, f"probe/{name}")
    if cfg.probe.feature not in ("cls", "mean", "pooled"):
        raise ConfigError(
            "probe/feature", f"expected 'cls', 'mean' or 'pooled', got {cfg.probe.feature!r}"
        )
    if cfg.probe.every < 1:
        raise ConfigError("probe/every", f"expected >= 1, got {cfg.probe.every}")


def _check_ranges(cfg: TrialConfig) -> None:
    if cfg.train.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(
            "train/precision", f"expected auto, bf16 or fp32, got {cfg.train.precision!r}"
        )
    if cfg.train.device not in ("auto", "cpu", "cuda"):
        raise ConfigError("train/device", f"expected auto, cpu or cuda, got {cfg.train.device!r}")
    for key, low in (("epochs", 1), ("threads", 0)):
        if getattr(cfg.train, key) < low:
            raise ConfigError(f"train/{key}", f"expected >= {low}")
    if cfg.optim.batch_size < 2:
        raise ConfigError("optim/batch_size", "expected >= 2")
    if cfg.optim.lr <= 0:
        raise ConfigError("optim/lr", f"expected > 0, got {cfg.optim.lr}")
