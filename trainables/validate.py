"""Validation of a parsed trial config against the registries.

:func:`parse_trial_config` is what a trial (and ``spaces check``) calls:
:meth:`TrialConfig.from_dict` parses keys and types, then every registry name
(data source, encoder, masking strategy, augmentation op, objective, probe)
and every option of the chosen entries is checked against the registered
function's signature. It reads the registries through a
:class:`~trainables.catalogue.Catalogue`: a trial uses the live registries,
``spaces check`` the torch-free snapshot of the same facts.
:mod:`trainables.config` stays a leaf.

Example:
    >>> parse_trial_config({"mask": {"strategy": "random", "ratio": 0.5}}).mask.ratio
    0.5
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainables._registry import REQUIRED, UnknownNameError, check_value, suggest
from trainables.catalogue import Catalogue, live
from trainables.config import VIT_SIZES, ConfigError, TrialConfig
from trainables.errors import shown
from trainables.geometry import (
    check_encoder_fits_images,
    check_geometry,
    check_heads,
    declared_count,
)

if TYPE_CHECKING:  # the decoded data (torch): imported by the caller, never here
    from trainables.data import Dataset

__all__ = [
    "attention_refusal",
    "config_problems",
    "dataset_problems",
    "option_problems",
    "parse_trial_config",
    "validate",
]


def parse_trial_config(
    config: Mapping[str, Any], *, catalogue: Catalogue | None = None
) -> TrialConfig:
    """Parse a nested trial config and check it against the registries.

    Args:
        config: the nested config (``config["mask"]["ratio"]``).
        catalogue: the registries to check against (default: the live ones).

    Raises:
        ConfigError: naming the key path and what was expected.
    """
    cfg = TrialConfig.from_dict(config)
    validate(cfg, catalogue=catalogue)
    return cfg


def config_problems(
    config: Mapping[str, Any], *, catalogue: Catalogue | None = None
) -> tuple[TrialConfig | None, list[ConfigError]]:
    """Parse a nested trial config and find every problem :func:`parse_trial_config`
    would raise one at a time (``spaces check`` shows them all at once).

    Each section (data, model, mask, aug, loss, probes, ranges) is checked on its own,
    and within one every name and option (two unknown augmentation ops are two
    problems); the checks that combine sections (the encoder against the objective,
    the patches against the images) run once those are sound.

    Returns:
        The parsed config (None when its keys or types are wrong) and the problems.

    Example:
        >>> _, found = config_problems({"data": {"val_fraction": 2}, "probe": {"every": 0}})
        >>> [err.path for err in found]
        ['data/val_fraction', 'probe/every']
    """
    try:
        cfg = TrialConfig.from_dict(config)
    except ConfigError as err:
        return None, [err]
    return cfg, _problems(cfg, catalogue or live())


def option_problems(
    catalogue: Catalogue, kind: str, name: str, given: Any, path: str
) -> Iterator[ConfigError]:
    """Every option of entry ``name`` that it does not take, lacks or takes of another
    kind, naming the key and what was expected.

    Example:
        >>> found = option_problems(live(), "augment", "hflip", {"pp": 1, "p": 2}, "aug/hflip")
        >>> [f"{err.path}: {err.message}" for err in found]  # doctest: +NORMALIZE_WHITESPACE
        ["aug/hflip/pp: unknown option (did you mean 'p'?); valid: p",
         'aug/hflip/p: expected a value in [0, 1], got 2']
    """
    if not isinstance(given, Mapping):
        yield ConfigError(path, f"expected a mapping of options, got {shown(given)}")
        return
    entry = catalogue.entry(kind, name)
    for key, default in entry.options.items():
        if default == REQUIRED and key not in given:
            yield ConfigError(f"{path}/{key}", f"'{name}' needs this option; none was given")
    if entry.any_option:
        return
    valid = list(entry.options)
    limits = entry.meta.get("limits", {})
    sound = True
    for key, value in given.items():
        if key not in valid:
            sound = False
            yield ConfigError(
                f"{path}/{key}",
                f"unknown option{suggest(str(key), valid)}; valid: {', '.join(valid) or 'none'}",
            )
            continue
        problem = check_value(value, entry.types.get(key, ""), limits.get(key))
        if problem:
            sound = False
            yield ConfigError(f"{path}/{key}", problem)
    for low, high in entry.meta.get("ordered", ()) if sound else ():
        a, b = (given.get(k, entry.options.get(k)) for k in (low, high))
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
        if numbers and a > b:
            yield ConfigError(
                f"{path}/{low if low in given else high}",
                f"{low} ({a}) must be <= {high} ({b})",
            )


def _entry(catalogue: Catalogue, kind: str, name: str, path: str) -> Any:
    try:
        return catalogue.entry(kind, name)
    except UnknownNameError as err:
        raise ConfigError(path, str(err)) from None


def validate(cfg: TrialConfig, *, catalogue: Catalogue | None = None) -> None:
    """Check registry names and option keys of ``cfg``; raise the first :class:`ConfigError`."""
    found = _problems(cfg, catalogue or live())
    if found:
        raise found[0]


#: a check of one section: every problem it finds
Check = Callable[[TrialConfig, Catalogue], Iterator[ConfigError]]


def _problems(cfg: TrialConfig, cat: Catalogue) -> list[ConfigError]:
    found: list[ConfigError] = []
    sections: dict[str, Check] = {
        "data": _check_data,
        "model": _caught_check(_check_model),
        "mask": _check_mask,
        "aug": _check_aug,
        "loss": _check_loss,
        "probe": _check_probes,
        "ranges": _check_ranges,
    }
    sound = {name: _collect(found, check, cfg, cat) for name, check in sections.items()}
    # these read several sections: only once those are sound
    if sound["model"] and sound["mask"] and sound["loss"]:
        _collect(found, _caught_check(_check_encoder_fits), cfg, cat)
    if sound["model"] and sound["probe"]:
        _collect(found, _caught_check(_check_feature), cfg, cat)
    if sound["data"] and sound["model"] and sound["loss"] and sound["ranges"]:
        _collect(found, _caught_check(check_geometry), cfg, cat)  # a patch size is >= 1
    if sound["data"] and sound["probe"]:
        _collect(found, _caught_check(_check_count), cfg, cat)
    if sound["model"] and sound["loss"] and sound["ranges"]:
        _collect(found, _caught_check(check_heads), cfg, cat)
    return found


def _collect(found: list[ConfigError], check: Check, cfg: TrialConfig, cat: Catalogue) -> bool:
    """Run one section's check; its problems join ``found``. True when it found none."""
    problems = list(check(cfg, cat))
    found.extend(problems)
    return not problems


def _caught(check: Callable[..., object], *args: Any) -> Generator[ConfigError, None, bool]:
    """Run a check that raises its problem: yield it. Returns True when it found none."""
    try:
        check(*args)
    except ConfigError as err:
        yield err
        return False
    return True


def _caught_check(check: Callable[[TrialConfig, Catalogue], None]) -> Check:
    """A check that raises its (one) problem as a section's :data:`Check`."""
    return lambda cfg, cat: _caught(check, cfg, cat)


def _known(cat: Catalogue, kind: str, name: str, path: str) -> Generator[ConfigError, None, bool]:
    """The problem when ``name`` is not registered as a ``kind``. True when it is."""
    return _caught(_entry, cat, kind, name, path)


def _check_data(cfg: TrialConfig, cat: Catalogue) -> Iterator[ConfigError]:
    if (yield from _known(cat, "data", cfg.data.name, "data/name")):
        yield from option_problems(cat, "data", cfg.data.name, cfg.data.options, "data/options")
    path = cfg.data.options.get("path")
    if isinstance(path, str) and not Path(path).expanduser().exists():  # before any trial
        yield ConfigError("data/options/path", f"no such file or directory: {path}")
    if not 0.0 < cfg.data.val_fraction < 1.0:
        yield ConfigError(
            "data/val_fraction", f"expected a share in (0, 1), got {cfg.data.val_fraction}"
        )


def _check_model(cfg: TrialConfig, cat: Catalogue) -> None:
    if cfg.model.name not in cat.names("encoder"):
        from trainables.encoders import check_timm_name  # a timm model: ask timm

        check_timm_name(cfg.model.name)
    sizes = [k for k in VIT_SIZES if getattr(cfg.model, k)]
    if sizes:  # a preset takes the sizes its function takes; a timm model, if it is a ViT
        if cfg.model.name in cat.names("encoder"):
            takes = cat.entry("encoder", cfg.model.name).options
        else:
            from trainables.encoders import timm_model_kind

            takes = sizes if timm_model_kind(cfg.model.name)[0] else []
        for key in sizes:
            if key not in takes:
                raise ConfigError(
                    f"model/{key}",
                    f"'{cfg.model.name}' takes no {key}; the sizes apply to ViTs only",
                )


def _check_encoder_fits(cfg: TrialConfig, cat: Catalogue) -> None:
    """An objective that masks tokens needs a ViT; a strategy that masks by attention
    needs one whose class-token attention can be read (not a CNN)."""
    if not cat.entry("objective", cfg.loss.name).meta.get("masks"):
        return
    scores = cat.entry("masking", cfg.mask.strategy).meta.get("scores")
    name = cfg.model.name
    if name in cat.names("encoder"):
        has = bool(cat.entry("encoder", name).meta.get("attention"))
        tokens, problem = has, None if has else f"{name} has no attention blocks"
    else:  # a timm model: build it on the meta device (no memory, no weights) and look
        from trainables.encoders import timm_model_kind

        tokens, problem = timm_model_kind(name)
    if not tokens:
        vits = [n for n in cat.names("encoder") if cat.entry("encoder", n).meta.get("attention")]
        raise ConfigError(
            "model/name",
            f"'{cfg.loss.name}' masks patch tokens and needs a VisionTransformer; "
            f"'{name}' is not one (use {', '.join(vits)} or a timm ViT, e.g. vit_tiny_patch16_224)",
        )
    if scores == "attention" and problem:
        raise attention_refusal(cfg.mask.strategy, problem)


def _check_feature(cfg: TrialConfig, cat: Catalogue) -> None:
    """The probes' feature must exist on the encoder: ``cls`` reads a ViT's class token,
    ``mean`` its patch tokens; every encoder gives ``pooled``."""
    kind, name = cfg.probe.feature, cfg.model.name
    if kind == "pooled":
        return
    if name in cat.names("encoder"):  # a preset ViT has a class token whose attention reads
        vit = cls_token = bool(cat.entry("encoder", name).meta.get("attention"))
    else:
        from trainables.encoders import timm_vit_tokens

        vit, cls_token = timm_vit_tokens(name)
    if not vit:
        raise ConfigError(
            "probe/feature",
            f"'{kind}' reads a ViT's tokens; '{name}' is not a ViT: use feature: pooled",
        )
    if kind == "cls" and not cls_token:
        raise ConfigError(
            "probe/feature",
            f"'cls' reads the class token; '{name}' has none: use feature: mean or pooled",
        )


def _check_count(cfg: TrialConfig, cat: Catalogue) -> None:
    """A kNN probe's k at most the training images, where the source says how many."""
    count = declared_count(cfg, cat)
    if isinstance(count, int) and not isinstance(count, bool) and count > 1:
        _check_neighbours(cfg, cfg.data.split(count)[0])


def _check_neighbours(cfg: TrialConfig, train: int) -> None:
    """A k the space gives must not exceed the training images (the default, 20, is
    cut to all of them on smaller data)."""
    k = cfg.probe.options.get("knn", {}).get("k")
    if "knn" in cfg.probe.names and isinstance(k, int) and k > train:
        raise ConfigError(
            "probe/knn/k",
            f"{k} neighbours, but data '{cfg.data.name}' holds {train} training "
            f"image{'' if train == 1 else 's'} "
            f"(val_fraction {cfg.data.val_fraction} held out); use k <= {train}",
        )


def dataset_problems(
    cfg: TrialConfig, dataset: Dataset, *, catalogue: Catalogue | None = None
) -> Iterator[ConfigError]:
    """What only the decoded data shows, for a config :func:`validate` passed: a
    labelled probe needs labels of two classes or more among the training images; a
    kNN probe's k at most the training images; square images, which a ViT's patch
    tiles and for which the encoder builds (a source that declares no geometry: a
    file, a folder).

    Example:
        >>> from trainables.data import load_dataset
        >>> cfg = TrialConfig.from_dict({"probe": {"names": ["knn"], "knn": {"k": 5000}}})
        >>> for problem in dataset_problems(cfg, load_dataset(cfg.data)):
        ...     print(problem.path, problem.message.split("; ")[-1])
        probe/knn/k use k <= 1348
    """
    cat = catalogue or live()
    labelled = [n for n in cfg.probe.names if cat.entry("probe", n).meta.get("needs_labels")]
    if labelled and dataset.train_y is None:
        yield ConfigError(
            "probe/names",
            f"probe '{labelled[0]}' needs labels but data '{dataset.name}' has none; "
            "use rankme, alpha_req, align_uniform or lidar",
        )
    elif labelled and (classes := int(dataset.train_y.unique().numel())) < 2:
        yield ConfigError(
            "probe/names",
            f"probe '{labelled[0]}' tells classes apart, but the training images of data "
            f"'{dataset.name}' hold {classes} class{'' if classes == 1 else 'es'}; give "
            "labels of two classes or more, "
            "or use a label-free probe (rankme, alpha_req, align_uniform, lidar)",
        )
    yield from _caught(_check_neighbours, cfg, len(dataset.train_x))
    height, width = (int(n) for n in dataset.train_x.shape[-2:])
    if height != width:
        yield ConfigError(
            "data/name",
            f"data '{dataset.name}': {height}x{width} images; the encoders take square images",
        )
    else:
        channels = int(dataset.train_x.shape[1])
        yield from _caught(check_encoder_fits_images, cfg, cat, width, channels)


def attention_refusal(strategy: str, problem: str) -> ConfigError:
    """The error for an attention-guided ``strategy`` on an encoder with ``problem``."""
    return ConfigError(
        "mask/strategy", f"'{strategy}' masks by the encoder's class-token attention: {problem}"
    )


def _check_mask(cfg: TrialConfig, cat: Catalogue) -> Iterator[ConfigError]:
    strategy = yield from _known(cat, "masking", cfg.mask.strategy, "mask/strategy")
    for name in cfg.mask.options:
        yield from _known(cat, "masking", name, f"mask/{name}")
    yield from _known(cat, "ratio_schedule", cfg.mask.schedule, "mask/schedule")
    for key in ("ratio", "ratio_end"):
        value = getattr(cfg.mask, key)
        if value is not None and not 0.0 <= value <= 0.95:
            yield ConfigError(f"mask/{key}", f"expected a value in [0, 0.95], got {value}")
    if strategy:
        given = cfg.mask.options.get(cfg.mask.strategy, {})
        yield from option_problems(
            cat, "masking", cfg.mask.strategy, given, f"mask/{cfg.mask.strategy}"
        )


def _check_aug(cfg: TrialConfig, cat: Catalogue) -> Iterator[ConfigError]:
    known = []
    for ops, prefix in ((cfg.aug.ops, "aug"), (cfg.aug.view2 or {}, "aug/view2")):
        for name, params in ops.items():
            if (yield from _known(cat, "augment", name, f"{prefix}/{name}")):
                known.append((name, params, f"{prefix}/{name}"))
    for name, params, path in known:  # the unknown names first, as a trial raises them
        yield from option_problems(cat, "augment", name, params, path)


def _check_loss(cfg: TrialConfig, cat: Catalogue) -> Iterator[ConfigError]:
    known = yield from _known(cat, "objective", cfg.loss.name, "loss/name")
    for name in cfg.loss.options:
        yield from _known(cat, "objective", name, f"loss/{name}")
    if not known:
        return
    terms = list(cat.entry("objective", cfg.loss.name).meta["weights"])
    for term, weight in cfg.loss.weights.items():
        if term not in terms:
            yield ConfigError(
                f"loss/weights/{term}",
                f"'{cfg.loss.name}' has no term '{term}'{suggest(term, terms)}; "
                f"its terms: {', '.join(terms)}",
            )
        elif isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            yield ConfigError(
                f"loss/weights/{term}", f"expected a number >= 0, got {shown(weight)}"
            )
    given = cfg.loss.options.get(cfg.loss.name, {})
    yield from option_problems(cat, "objective", cfg.loss.name, given, f"loss/{cfg.loss.name}")


def _check_probes(cfg: TrialConfig, cat: Catalogue) -> Iterator[ConfigError]:
    for i, name in enumerate(cfg.probe.names):
        if name in cfg.probe.names[:i]:
            yield ConfigError(f"probe/names[{i}]", f"'{name}' is listed twice")
        elif (yield from _known(cat, "probe", name, f"probe/names[{i}]")):
            given = cfg.probe.options.get(name, {})
            yield from option_problems(cat, "probe", name, given, f"probe/{name}")
    for name in cfg.probe.options:
        yield from _known(cat, "probe", name, f"probe/{name}")
    if cfg.probe.feature not in ("cls", "mean", "pooled"):
        yield ConfigError(
            "probe/feature", f"expected 'cls', 'mean' or 'pooled', got {shown(cfg.probe.feature)}"
        )
    if cfg.probe.every < 1:
        yield ConfigError("probe/every", f"expected >= 1, got {cfg.probe.every}")


def _check_ranges(cfg: TrialConfig, cat: Catalogue) -> Iterator[ConfigError]:
    if cfg.train.precision not in ("auto", "bf16", "fp32"):
        yield ConfigError(
            "train/precision", f"expected auto, bf16 or fp32, got {shown(cfg.train.precision)}"
        )
    if cfg.train.device not in ("auto", "cpu", "cuda"):
        yield ConfigError(
            "train/device", f"expected auto, cpu or cuda, got {shown(cfg.train.device)}"
        )
    for key, low in (("epochs", 1), ("threads", 0)):
        if getattr(cfg.train, key) < low:
            yield ConfigError(f"train/{key}", f"expected >= {low}")
    horizon = cfg.train.horizon
    if horizon is not None and horizon < cfg.train.epochs:
        yield ConfigError(
            "train/horizon",
            f"the schedules' span ({horizon}) ends before the trial does "
            f"({cfg.train.epochs} epochs, budget/epochs); raise it to "
            f"{cfg.train.epochs} or more, or leave it out (the schedules then span the trial)",
        )
    for key in VIT_SIZES:
        value = getattr(cfg.model, key)
        if value is not None and value < 1:
            yield ConfigError(f"model/{key}", f"expected an integer >= 1, got {value}")
    for key, low in (("decoder_dim", 1), ("decoder_heads", 1), ("decoder_depth", 0)):
        if getattr(cfg.model, key) < low:
            yield ConfigError(
                f"model/{key}", f"expected an integer >= {low}, got {getattr(cfg.model, key)}"
            )
    if cfg.optim.batch_size < 2:
        yield ConfigError("optim/batch_size", "expected >= 2")
    yield from _optim_problems(cfg)


#: AdamW's settings and their schedule: the interval each must lie in
_OPTIM_LIMITS = {
    "lr": "(0, inf)",
    "weight_decay": "[0, inf)",
    "warmup_epochs": "[0, inf)",
    "min_lr_ratio": "[0, 1]",
    "beta1": "[0, 1)",
    "beta2": "[0, 1)",
    "grad_clip": "[0, inf)",
}


def _optim_problems(cfg: TrialConfig) -> Iterator[ConfigError]:
    """AdamW refuses a negative decay or a beta outside [0, 1) only when a trial builds
    it; a negative warm-up or a floor above the peak lr make no schedule."""
    for key, limit in _OPTIM_LIMITS.items():
        problem = check_value(getattr(cfg.optim, key), "float", limit)
        if problem:
            note = " (0: no clipping)" if key == "grad_clip" else ""
            yield ConfigError(f"optim/{key}", problem.replace(limit, f"{limit}{note}", 1))
