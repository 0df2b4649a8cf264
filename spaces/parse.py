"""Raw YAML mapping -> :class:`~spaces.model.SearchSpec`, every problem located.

A space file has the study settings (``study``, ``budget``), the searched
``params`` and the fixed trial settings (``data``, ``model``, ``mask``,
``aug``, ``optim``, ``loss``, ``probe``, ``train``) that each trial starts
from. Every error names the file, the line, the key path and what was
expected, e.g. ``spaces/my.yaml:14 params/mask/ratio: low (0.9) > high (0.2)``.
Cross-checks that need the whole spec are in :mod:`spaces.checks`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spaces.checks import check_conditions, check_spec
from spaces.errors import Problems, SpecError
from spaces.load import apply_overrides, load_file, override_lines
from spaces.model import (
    KINDS,
    Budget,
    Condition,
    Objective,
    Param,
    PrunerSpec,
    SamplerSpec,
    SchedulerSpec,
    SearchSpec,
    StudySpec,
    is_number,
)
from spaces.study import LOGGERS, TUNE_SCHEDULERS, resolved_options
from trainables._registry import check_value, suggest
from trainables.errors import shown

__all__ = ["TRIAL_SECTIONS", "load_spec", "parse_spec"]

TRIAL_SECTIONS = ("data", "model", "mask", "aug", "optim", "loss", "probe", "train")
TOP_KEYS = ("description", "include", "study", "budget", "params", *TRIAL_SECTIONS)
STUDY_KEYS = (
    "name",
    "objective",
    "sampler",
    "pruner",
    "scheduler",
    "enqueue",
    "storage",
    "loggers",
)
#: The most trials, epochs, concurrent trials or CPUs a spec may ask for.
MAX_COUNT = 1_000_000
#: Re-runs of the best configuration (budget.noise_seeds) at most: each is a full trial.
MAX_NOISE_SEEDS = 100
#: What a configuration sampled again trains with (budget.repeated_config).
REPEATED_CONFIG = ("next_seed", "same_seed")
STORAGE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+", "journal:")


def _unknown(problems: Problems, path: tuple, keys: Any, valid: tuple[str, ...]) -> bool:
    """Report every key of ``keys`` not in ``valid`` (with did-you-mean); True if any."""
    bad = [k for k in keys if k not in valid]
    for k in bad:
        message = f"unknown key{suggest(str(k), list(valid))}; valid: {', '.join(valid)}"
        problems.add((*path, str(k)), message)
    return bool(bad)


def _parse_param(name: str, raw: Any, problems: Problems) -> Param | None:
    path = ("params", name)
    if not isinstance(raw, Mapping):
        problems.add(path, f"expected a mapping with 'type', got {shown(raw)}")
        return None
    kind = KINDS.get(raw["type"]) if isinstance(raw.get("type"), str) else None
    if kind is None:
        problems.add(
            (*path, "type"),
            f"expected one of {', '.join(KINDS)}; got {raw.get('type')!r}",
        )
        return None
    if _unknown(problems, path, raw.keys(), kind.keys):
        return None
    when = _parse_when(raw.get("when"), path, problems)
    if when is None:
        return None
    param = kind.parse(name, raw, path, problems)
    return None if param is None else dataclasses.replace(param, when=when)


def _parse_when(raw: Any, path: tuple, problems: Problems) -> Condition | None:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        problems.add((*path, "when"), f"expected {{param: value or [values]}}, got {shown(raw)}")
        return None
    out = []
    for other, values in raw.items():
        values = tuple(values) if isinstance(values, list) else (values,)
        if not values:
            problems.add((*path, "when", str(other)), "no values given")
            return None
        out.append((str(other), values))
    return tuple(out)


def _parse_objectives(raw: Any, problems: Problems) -> tuple[Objective, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        path = ("study", "objective", i) if isinstance(raw, list) else ("study", "objective")
        if not isinstance(item, Mapping) or not isinstance(item.get("metric"), str):
            problems.add(
                path, f"expected {{metric: NAME, direction: maximize|minimize}}, got {shown(item)}"
            )
            continue
        _unknown(problems, path, item.keys(), ("metric", "direction"))
        direction = item.get("direction")  # None: the metric's own (spaces.checks)
        if direction not in ("maximize", "minimize", None):
            problems.add(
                (*path, "direction"), f"expected maximize or minimize, got {shown(direction)}"
            )
            continue
        out.append(Objective(item["metric"], direction))
    return tuple(out)


def _parse_enqueue(raw: Any, problems: Problems) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        problems.add(
            ("study", "enqueue"),
            "expected a list of {param: value} mappings (configurations to run first)",
        )
        return ()
    return tuple(dict(r) for r in raw)


def _parse_storage(raw: Any, problems: Problems) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.startswith(STORAGE_SCHEMES):
        problems.add(
            ("study", "storage"),
            "expected an Optuna storage URL (sqlite:///PATH, postgresql+psycopg2://..., "
            f"mysql://...) or journal:PATH, got {shown(raw)}",
        )
        return None
    return raw


def _parse_loggers(raw: Any, problems: Problems) -> dict[str, dict[str, Any]]:
    """``[tensorboard, mlflow]`` or ``{mlflow: {tracking_uri: ...}}`` -> name -> options."""
    if raw is None:
        return {}
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        raw = {name: {} for name in raw}
    if not isinstance(raw, Mapping):
        problems.add(("study", "loggers"), "expected a list of names or a mapping")
        return {}
    out = {}
    for name, options in raw.items():
        path = ("study", "loggers", str(name))
        if name not in LOGGERS:
            problems.add(
                path,
                f"unknown logger{suggest(str(name), list(LOGGERS))}; valid: {', '.join(LOGGERS)}",
            )
            continue
        valid, package = LOGGERS[name]
        options = options or {}
        if not isinstance(options, Mapping):
            problems.add(path, "expected a mapping of options")
            continue
        for option in options:
            if option not in valid:
                problems.add(
                    (*path, str(option)),
                    f"unknown option{suggest(str(option), list(valid))}; "
                    f"valid: {', '.join(valid) or 'none'}",
                )
        if importlib.util.find_spec(package) is None:
            problems.add(path, f"needs the {package} package: pip install {package}")
        out[str(name)] = dict(options)
    return out


def _parse_named(raw: Any, cls: type, key: str, problems: Problems) -> Any:
    """``name`` or ``{name: ..., option: ...}`` -> ``cls(name, options)``; None if not given."""
    if raw is None:
        return None
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        problems.add(("study", key), f"expected {{name: ..., options...}}, got {shown(raw)}")
        return None
    options = {k: v for k, v in raw.items() if k != "name"}
    return cls(name=raw["name"], options=options)


def _parse_scheduler(study_raw: Mapping[str, Any], problems: Problems) -> SchedulerSpec | None:
    scheduler = _parse_named(study_raw.get("scheduler"), SchedulerSpec, "scheduler", problems)
    if scheduler is None:
        return None
    path = ("study", "scheduler")
    if scheduler.name not in TUNE_SCHEDULERS:
        problems.add(
            path,
            f"unknown Tune scheduler '{scheduler.name}'; valid: {', '.join(TUNE_SCHEDULERS)}",
        )
    declared = TUNE_SCHEDULERS.get(scheduler.name, {})
    for key, value in scheduler.options.items():
        if scheduler.name in TUNE_SCHEDULERS and key not in declared:
            valid = list(declared)
            problems.add(
                (*path, key), f"unknown option{suggest(key, valid)}; valid: {', '.join(valid)}"
            )
        elif key in declared and (problem := check_value(value, *declared[key])):
            problems.add((*path, key), problem)
    return scheduler


def _parse_study(raw: Any, problems: Problems) -> StudySpec:
    default = StudySpec()
    if not isinstance(raw, Mapping):
        problems.add(("study",), "expected a mapping")
        raw = {}
    _unknown(problems, ("study",), raw.keys(), STUDY_KEYS)
    objectives = default.objectives
    if "objective" in raw:
        objectives = _parse_objectives(raw["objective"], problems) or objectives
    sampler = _parse_named(raw.get("sampler"), SamplerSpec, "sampler", problems) or SamplerSpec()
    pruner = _parse_named(raw.get("pruner"), PrunerSpec, "pruner", problems) or PrunerSpec()
    scheduler = _parse_scheduler(raw, problems)
    if scheduler is not None:
        if "pruner" in raw and pruner.name != "none":
            problems.add(
                ("study", "scheduler"),
                "a Tune scheduler replaces the Optuna pruner: set pruner: none",
            )
        pruner = PrunerSpec("none", {})
    return StudySpec(
        name=str(raw.get("name", default.name)),
        objectives=objectives,
        sampler=SamplerSpec(
            sampler.name, resolved_options("sampler", sampler.name, sampler.options)
        ),
        pruner=PrunerSpec(pruner.name, resolved_options("pruner", pruner.name, pruner.options)),
        enqueue=_parse_enqueue(raw.get("enqueue"), problems),
        storage=_parse_storage(raw.get("storage"), problems),
        scheduler=scheduler,
        loggers=_parse_loggers(raw.get("loggers"), problems),
    )


def _parse_budget(raw: Any, problems: Problems) -> Budget:
    default = Budget()
    if not isinstance(raw, Mapping):
        problems.add(("budget",), "expected a mapping")
        return default
    _unknown(
        problems,
        ("budget",),
        raw.keys(),
        (
            "trials",
            "epochs",
            "concurrency",
            "resources",
            "max_failures",
            "noise_seeds",
            "repeated_config",
        ),
    )
    values: dict[str, Any] = {}
    repeated = raw.get("repeated_config", default.repeated_config)
    if repeated not in REPEATED_CONFIG:
        problems.add(
            ("budget", "repeated_config"),
            f"expected one of {', '.join(REPEATED_CONFIG)}, got {shown(repeated)}",
        )
        repeated = default.repeated_config
    values["repeated_config"] = repeated
    for key, what, most in (
        ("max_failures", "retries of a failed trial", MAX_COUNT),
        ("noise_seeds", "re-runs of the best configuration", MAX_NOISE_SEEDS),
    ):
        value = raw.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= most:
            problems.add(
                ("budget", key), f"expected an integer in 0..{most:,} ({what}), got {shown(value)}"
            )
            value = getattr(default, key)
        values[key] = value
    for key in ("trials", "epochs", "concurrency"):
        value = raw.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.add(("budget", key), f"expected an integer >= 1, got {shown(value)}")
            value = getattr(default, key)
        elif value > MAX_COUNT:
            problems.add(("budget", key), f"expected at most {MAX_COUNT:,}, got {value:,}")
            value = getattr(default, key)
        values[key] = value
    resources = raw.get("resources", {}) or {}
    if not isinstance(resources, Mapping):
        problems.add(("budget", "resources"), "expected {cpu: N, gpu: F}")
        resources = {}
    _unknown(problems, ("budget", "resources"), resources.keys(), ("cpu", "gpu"))
    for key in ("cpu", "gpu"):
        value = resources.get(key, getattr(default, key))
        if problem := _resource_problem(key, value):
            problems.add(("budget", "resources", key), problem)
            value = getattr(default, key)
        values[key] = float(value)
    return Budget(**values)


def _resource_problem(key: str, value: Any) -> str | None:
    """What is wrong with a trial's CPU or GPU share (None: nothing)."""
    if not is_number(value) or not 0 <= value <= MAX_COUNT:
        return f"expected a number >= 0 (fractions allowed), got {shown(value)}"
    if key == "cpu" and value == 0:
        return "expected a number > 0: a trial needs at least a share of a CPU"
    if key == "gpu" and value > 1 and not float(value).is_integer():
        return f"a share above 1 GPU must be a whole number (Ray's rule), got {value}"
    return None


def _parse_params(raw: Any, problems: Problems) -> list[Param]:
    if not isinstance(raw, Mapping):
        problems.add(("params",), "expected a mapping of name -> distribution")
        return []
    params = []
    for name, entry in raw.items():
        if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
            problems.add(("params", str(name)), "expected a name like 'mask/ratio'")
            continue
        param = _parse_param(name, entry, problems)
        if param is not None:
            params.append(param)
    return params


def _parse_base(data: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    base: dict[str, Any] = {}
    for section in TRIAL_SECTIONS:
        if section in data:
            value = data[section]
            if not isinstance(value, Mapping):
                problems.add((section,), f"expected a mapping, got {shown(value)}")
                continue
            base[section] = value
    if "epochs" in base.get("train", {}):
        problems.add(("train", "epochs"), "set the epochs in budget/epochs")
    return base


def parse_spec(
    data: Any,
    *,
    source: str,
    lines: Mapping[tuple[str, ...], Any] | None = None,
    builtin_trainable: bool = True,
) -> SearchSpec:
    """Validate parsed YAML ``data`` into a :class:`SearchSpec`; raise :class:`SpecError`.

    With ``builtin_trainable=False`` the params and metrics are not checked
    against :mod:`trainables` (the space drives a user's own trainable).

    Example:
        >>> spec = parse_spec(
        ...     {"params": {"mask/ratio": {"type": "float", "low": 0.5, "high": 0.9}}},
        ...     source="inline",
        ... )
        >>> spec.params[0]
        FloatParam(name='mask/ratio', low=0.5, high=0.9, log=False, step=None, when=())
    """
    problems = Problems(source, lines or {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(
            [(source, 1, "", f"expected a mapping at the top level, got {type(data).__name__}")]
        )
    _unknown(problems, (), data.keys(), TOP_KEYS)
    study = _parse_study(data.get("study", {}) or {}, problems)
    budget = _parse_budget(data.get("budget", {}) or {}, problems)
    params = _parse_params(data.get("params", {}) or {}, problems)
    check_conditions(tuple(params), problems)
    base = _parse_base(data, problems)
    description = data.get("description", "")
    if not isinstance(description, str):
        problems.add(("description",), "expected a string")
        description = ""
    problems.raise_if_any()
    spec = SearchSpec(
        source=source,
        description=description.strip(),
        study=study,
        budget=budget,
        params=tuple(params),
        base=base,
        lines=problems.lines,
    )
    given_trials = (data.get("budget") or {}).get("trials")
    return check_spec(
        spec, problems, given_trials=given_trials, builtin_trainable=builtin_trainable
    )


def load_spec(
    path: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    builtin_trainable: bool = True,
) -> SearchSpec:
    """Read, validate and return the space in ``path``; ``overrides`` are dotted-key sets.

    With ``builtin_trainable=False`` the params and metrics are not checked
    against :mod:`trainables` (the space drives a user's own trainable).

    Raises:
        SpecError: with every located problem in the file.
    """
    source = str(path)
    data, lines = load_file(Path(path), source)
    if overrides:
        data = apply_overrides(data, overrides)
        lines = override_lines(lines, overrides, source)
    return parse_spec(data, source=source, lines=lines, builtin_trainable=builtin_trainable)
