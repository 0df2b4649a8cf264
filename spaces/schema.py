"""The search-space language: YAML -> frozen dataclasses, validated before any trial.

A space file has the study settings (``study``, ``budget``), the searched
``params`` and the fixed trial settings (``data``, ``model``, ``mask``,
``aug``, ``optim``, ``loss``, ``probe``, ``train``) that each trial starts
from. Every error names the file, the line, the key path and what was
expected, e.g. ``spaces/my.yaml:14 params/mask/ratio: low (0.9) > high (0.2)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spaces._yaml import YamlError, load_with_lines, read_text

__all__ = [
    "TUNE_SCHEDULERS",
    "Budget",
    "CategoricalParam",
    "FixedParam",
    "FloatParam",
    "GridParam",
    "IntParam",
    "Objective",
    "Param",
    "PrunerSpec",
    "SamplerSpec",
    "SchedulerSpec",
    "SearchSpec",
    "SpecError",
    "StudySpec",
    "load_spec",
    "parse_spec",
    "pbt_mutated",
]

TRIAL_SECTIONS = ("data", "model", "mask", "aug", "optim", "loss", "probe", "train")
TOP_KEYS = ("description", "include", "study", "budget", "params", *TRIAL_SECTIONS)


class SpecError(ValueError):
    """One or more located problems in a space file.

    Attributes:
        problems: ``(source, line, key_path, message)`` tuples, in file order.
    """

    def __init__(self, problems: list[tuple[str, int, str, str]]) -> None:
        self.problems = sorted(problems, key=lambda p: (p[0], p[1]))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        out = []
        for source, line, key, message in self.problems:
            where = f"{source}:{line}" if line else source
            out.append(f"{where} {key}: {message}" if key else f"{where} {message}")
        return out


Condition = tuple[tuple[str, tuple[Any, ...]], ...]
"""``((param, allowed values), ...)``: the parameter exists only when every one holds."""


@dataclass(frozen=True)
class FloatParam:
    """``suggest_float(name, low, high, log=..., step=...)``."""

    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    when: Condition = ()


@dataclass(frozen=True)
class IntParam:
    """``suggest_int(name, low, high, log=..., step=...)``."""

    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    when: Condition = ()


@dataclass(frozen=True)
class CategoricalParam:
    """``suggest_categorical(name, choices)``."""

    name: str
    choices: tuple[Any, ...]
    when: Condition = ()


@dataclass(frozen=True)
class GridParam:
    """A grid axis: every value is run (with the ``grid`` sampler), in order.

    Other samplers treat it as a categorical choice among ``values``.
    """

    name: str
    values: tuple[Any, ...]
    when: Condition = ()


@dataclass(frozen=True)
class FixedParam:
    """A constant: not sampled, recorded on the trial, set in its config."""

    name: str
    value: Any
    when: Condition = ()


Param = FloatParam | IntParam | CategoricalParam | GridParam | FixedParam


@dataclass(frozen=True)
class Objective:
    """A reported metric and its direction (``maximize`` or ``minimize``)."""

    metric: str
    direction: str = "maximize"


@dataclass(frozen=True)
class SamplerSpec:
    """An Optuna sampler by name with its options written out (seed, multivariate, ...)."""

    name: str = "tpe"
    options: Mapping[str, Any] = field(
        default_factory=lambda: {
            "seed": 0,
            "multivariate": True,
            "constant_liar": True,
            "n_startup_trials": 8,
        }
    )


@dataclass(frozen=True)
class PrunerSpec:
    """An Optuna pruner by name with its options."""

    name: str = "median"
    options: Mapping[str, Any] = field(
        default_factory=lambda: {"n_startup_trials": 5, "n_warmup_steps": 5}
    )


@dataclass(frozen=True)
class SchedulerSpec:
    """A Ray Tune scheduler used instead of an Optuna pruner (``asha`` or ``pbt``)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


#: Tune schedulers selectable from ``study.scheduler`` and their options.
TUNE_SCHEDULERS: dict[str, tuple[str, ...]] = {
    "asha": ("grace_period", "reduction_factor"),
    "pbt": (
        "perturbation_interval",
        "burn_in_period",
        "quantile_fraction",
        "resample_probability",
        "mutate",
        "seed",
    ),
}


@dataclass(frozen=True)
class StudySpec:
    """Study-level settings."""

    name: str = "sslsearch"
    objectives: tuple[Objective, ...] = (Objective("knn_top1", "maximize"),)
    sampler: SamplerSpec = field(default_factory=SamplerSpec)
    pruner: PrunerSpec = field(default_factory=PrunerSpec)
    enqueue: tuple[dict[str, Any], ...] = ()
    storage: str | None = None
    scheduler: SchedulerSpec | None = None
    loggers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Budget:
    """How much to run: trials, epochs per trial, concurrency, resources per trial,
    and how often Tune retries a trial that failed (from its last checkpoint)."""

    trials: int = 20
    epochs: int = 30
    concurrency: int = 2
    cpu: float = 1.0
    gpu: float = 0.0
    max_failures: int = 0


@dataclass(frozen=True)
class SearchSpec:
    """A validated search space and study, ready to compile.

    Attributes:
        source: the file it was read from (for messages).
        description: the question the study answers.
        study: objective(s), sampler, pruner.
        budget: trials, epochs, concurrency, resources.
        params: searched (and fixed) parameters, in file order.
        base: fixed trial settings, a nested mapping merged under the params.
    """

    source: str
    description: str
    study: StudySpec
    budget: Budget
    params: tuple[Param, ...]
    base: Mapping[str, Any]

    @property
    def objective(self) -> Objective:
        """The primary objective."""
        return self.study.objectives[0]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain YAML-able data (what ``RUN_DIR/spec.yaml`` holds)."""
        params: dict[str, Any] = {}
        for p in self.params:
            if isinstance(p, FixedParam):
                params[p.name] = {"type": "fixed", "value": p.value}
            elif isinstance(p, CategoricalParam):
                params[p.name] = {"type": "categorical", "choices": list(p.choices)}
            elif isinstance(p, GridParam):
                params[p.name] = {"type": "grid", "values": list(p.values)}
            else:
                kind = "float" if isinstance(p, FloatParam) else "int"
                entry: dict[str, Any] = {"type": kind, "low": p.low, "high": p.high}
                if p.log:
                    entry["log"] = True
                if p.step is not None and not (kind == "int" and p.step == 1):
                    entry["step"] = p.step
                params[p.name] = entry
            if p.when:
                params[p.name]["when"] = {
                    name: list(values) if len(values) > 1 else values[0] for name, values in p.when
                }
        objectives = [{"metric": o.metric, "direction": o.direction} for o in self.study.objectives]
        out: dict[str, Any] = {
            "description": self.description,
            "study": {
                "name": self.study.name,
                "objective": objectives[0] if len(objectives) == 1 else objectives,
                "sampler": {"name": self.study.sampler.name, **dict(self.study.sampler.options)},
                "pruner": {"name": self.study.pruner.name, **dict(self.study.pruner.options)},
                **(
                    {"enqueue": [dict(p) for p in self.study.enqueue]} if self.study.enqueue else {}
                ),
                **({"storage": self.study.storage} if self.study.storage else {}),
                **(
                    {
                        "scheduler": {
                            "name": self.study.scheduler.name,
                            **dict(self.study.scheduler.options),
                        }
                    }
                    if self.study.scheduler
                    else {}
                ),
                **(
                    {"loggers": {k: dict(v) for k, v in self.study.loggers.items()}}
                    if self.study.loggers
                    else {}
                ),
            },
            "budget": {
                "trials": self.budget.trials,
                "epochs": self.budget.epochs,
                "concurrency": self.budget.concurrency,
                "resources": {"cpu": self.budget.cpu, "gpu": self.budget.gpu},
                **({"max_failures": self.budget.max_failures} if self.budget.max_failures else {}),
            },
            "params": params,
        }
        out.update(_plain(self.base))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class _Problems:
    """Collects located problems so that all are reported at once."""

    def __init__(self, source: str, lines: Mapping[tuple[str, ...], Any]) -> None:
        # a line is an int (in ``source``) or (file, line) for keys from an included file
        self.source, self.lines, self.items = source, lines, []

    def where(self, path: tuple[str, ...]) -> tuple[str, int]:
        while path:
            if path in self.lines:
                found = self.lines[path]
                return found if isinstance(found, tuple) else (self.source, found)
            path = path[:-1]
        return self.source, 0

    def add(self, path: tuple[str, ...], key: str, message: str) -> None:
        self.items.append((*self.where(path), key, message))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _unknown(keys: Any, valid: tuple[str, ...]) -> list[tuple[str, str]]:
    from trainables._registry import suggest

    return [
        (str(k), f"unknown key{suggest(str(k), list(valid))}; valid: {', '.join(valid)}")
        for k in keys
        if k not in valid
    ]


def _parse_param(name: str, raw: Any, problems: _Problems) -> Param | None:
    path = ("params", name)
    key = f"params/{name}"
    if not isinstance(raw, Mapping):
        problems.add(path, key, f"expected a mapping with 'type', got {raw!r}")
        return None
    kind = raw.get("type")
    allowed = {
        "float": ("type", "low", "high", "log", "step", "when"),
        "int": ("type", "low", "high", "log", "step", "when"),
        "categorical": ("type", "choices", "when"),
        "grid": ("type", "values", "when"),
        "fixed": ("type", "value", "when"),
    }
    if kind not in allowed:
        problems.add(
            (*path, "type"),
            f"{key}/type",
            f"expected one of float, int, categorical, grid, fixed; got {kind!r}",
        )
        return None
    bad = _unknown(raw.keys(), allowed[kind])
    for k, message in bad:
        problems.add((*path, k), f"{key}/{k}", message)
    if bad:
        return None
    when = _parse_when(raw.get("when"), path, key, problems)
    if when is None:
        return None
    param = _parse_distribution(name, kind, raw, path, key, problems)
    return None if param is None else dataclasses.replace(param, when=when)


def _step_lowers_high(kind: str, low: float, high: float, step: float) -> bool:
    """Whether Optuna would replace ``high`` because ``high - low`` is not a multiple of step."""
    import warnings

    import optuna

    cls = optuna.distributions.FloatDistribution
    if kind == "int":
        cls = optuna.distributions.IntDistribution
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = cls(low, high, step=step)
    return bool(caught) and dist.high != high


def _parse_when(raw: Any, path: tuple[str, ...], key: str, problems: _Problems) -> Condition | None:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping) or not raw:
        problems.add(
            (*path, "when"), f"{key}/when", f"expected {{param: value or [values]}}, got {raw!r}"
        )
        return None
    out = []
    for other, values in raw.items():
        values = tuple(values) if isinstance(values, list) else (values,)
        if not values:
            problems.add((*path, "when", str(other)), f"{key}/when/{other}", "no values given")
            return None
        out.append((str(other), values))
    return tuple(out)


def _parse_distribution(
    name: str,
    kind: str,
    raw: Mapping[str, Any],
    path: tuple[str, ...],
    key: str,
    problems: _Problems,
) -> Param | None:
    if kind == "fixed":
        if "value" not in raw:
            problems.add(path, key, "a fixed parameter needs 'value'")
            return None
        return FixedParam(name, raw["value"])
    if kind in ("categorical", "grid"):
        field_name = "choices" if kind == "categorical" else "values"
        choices = raw.get(field_name)
        if not isinstance(choices, list) or not choices:
            problems.add((*path, field_name), f"{key}/{field_name}", "expected a non-empty list")
            return None
        for i, c in enumerate(choices):
            if not (c is None or isinstance(c, bool | int | float | str)):
                problems.add(
                    (*path, field_name, str(i)),
                    f"{key}/{field_name}[{i}]",
                    f"expected a number, string, bool or null; got {c!r}",
                )
                return None
        if len(set(map(repr, choices))) != len(choices):
            problems.add((*path, field_name), f"{key}/{field_name}", f"duplicate {field_name}")
            return None
        if kind == "grid":
            return GridParam(name, tuple(choices))
        return CategoricalParam(name, tuple(choices))
    ok = True
    for bound in ("low", "high"):
        value = raw.get(bound)
        if not _is_number(value) or not math.isfinite(value):
            problems.add((*path, bound), f"{key}/{bound}", f"expected a number, got {value!r}")
            ok = False
        elif kind == "int" and not float(value).is_integer():
            problems.add((*path, bound), f"{key}/{bound}", f"expected an integer, got {value!r}")
            ok = False
    log = raw.get("log", False)
    if not isinstance(log, bool):
        problems.add((*path, "log"), f"{key}/log", f"expected true or false, got {log!r}")
        ok = False
    step = raw.get("step")
    if step is not None and (not _is_number(step) or step <= 0):
        problems.add((*path, "step"), f"{key}/step", f"expected a number > 0, got {step!r}")
        ok = False
    if not ok:
        return None
    low, high = raw["low"], raw["high"]
    if low > high:
        problems.add(path, key, f"low ({low}) > high ({high})")
        return None
    if log and low <= 0:
        problems.add((*path, "low"), f"{key}/low", f"log scale needs low > 0, got {low}")
        return None
    if log and step is not None and not (kind == "int" and step == 1):
        problems.add((*path, "step"), f"{key}/step", "step cannot be combined with log")
        return None
    if step is not None and not log and high > low and _step_lowers_high(kind, low, high, step):
        problems.add(
            (*path, "step"),
            f"{key}/step",
            f"high - low ({high - low:g}) is not a multiple of step ({step:g}); "
            "Optuna would silently lower high",
        )
        return None
    if kind == "float":
        return FloatParam(name, float(low), float(high), log, None if step is None else float(step))
    if step is not None and not float(step).is_integer():
        problems.add((*path, "step"), f"{key}/step", f"expected an integer, got {step!r}")
        return None
    return IntParam(name, int(low), int(high), log, 1 if step is None else int(step))


def _parse_objectives(raw: Any, problems: _Problems) -> tuple[Objective, ...]:
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for i, item in enumerate(items):
        path = (
            ("study", "objective") if not isinstance(raw, list) else ("study", "objective", str(i))
        )
        key = "study/objective" + (f"[{i}]" if isinstance(raw, list) else "")
        if not isinstance(item, Mapping) or not isinstance(item.get("metric"), str):
            problems.add(
                path, key, f"expected {{metric: NAME, direction: maximize|minimize}}, got {item!r}"
            )
            continue
        for k, message in _unknown(item.keys(), ("metric", "direction")):
            problems.add((*path, k), f"{key}/{k}", message)
        direction = item.get("direction", "maximize")
        if direction not in ("maximize", "minimize"):
            problems.add(
                (*path, "direction"),
                f"{key}/direction",
                f"expected maximize or minimize, got {direction!r}",
            )
            continue
        out.append(Objective(item["metric"], direction))
    return tuple(out)


def _parse_enqueue(raw: Any, problems: _Problems) -> tuple[dict[str, Any], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(r, Mapping) for r in raw):
        problems.add(
            ("study", "enqueue"),
            "study/enqueue",
            "expected a list of {param: value} mappings (configurations to run first)",
        )
        return ()
    return tuple(dict(r) for r in raw)


STORAGE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+", "journal:")


def _parse_storage(raw: Any, problems: _Problems) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw.startswith(STORAGE_SCHEMES):
        problems.add(
            ("study", "storage"),
            "study/storage",
            "expected an Optuna storage URL (sqlite:///PATH, postgresql://..., mysql://...) "
            f"or journal:PATH, got {raw!r}",
        )
        return None
    return raw


#: Ray Tune logger callbacks selectable from ``study.loggers``: options and the package each needs.
LOGGERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": ((), "tensorboardX"),
    "mlflow": (("tracking_uri", "experiment_name", "tags", "save_artifact"), "mlflow"),
    "wandb": (("project", "group", "entity", "mode", "api_key_file", "log_config"), "wandb"),
}


def _parse_loggers(raw: Any, problems: _Problems) -> dict[str, dict[str, Any]]:
    """``[tensorboard, mlflow]`` or ``{mlflow: {tracking_uri: ...}}`` -> name -> options."""
    import importlib.util

    if raw is None:
        return {}
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        raw = {name: {} for name in raw}
    if not isinstance(raw, Mapping):
        problems.add(("study", "loggers"), "study/loggers", "expected a list of names or a mapping")
        return {}
    out = {}
    for name, options in raw.items():
        path, key = ("study", "loggers", str(name)), f"study/loggers/{name}"
        if name not in LOGGERS:
            problems.add(path, key, f"unknown logger; valid: {', '.join(LOGGERS)}")
            continue
        valid, package = LOGGERS[name]
        options = options or {}
        if not isinstance(options, Mapping):
            problems.add(path, key, "expected a mapping of options")
            continue
        for option in options:
            if option not in valid:
                problems.add(
                    (*path, str(option)),
                    f"{key}/{option}",
                    f"unknown option; valid: {', '.join(valid) or 'none'}",
                )
        if importlib.util.find_spec(package) is None:
            problems.add(path, key, f"needs the {package} package: pip install {package}")
        out[str(name)] = dict(options)
    return out


def pbt_mutated(spec: SearchSpec) -> tuple[str, ...]:
    """The parameters PBT mutates: ``scheduler.mutate``, by default every sampled ``aug/`` one."""
    assert spec.study.scheduler is not None
    names = spec.study.scheduler.options.get("mutate")
    if names is None:
        names = [
            p.name
            for p in spec.params
            if p.name.startswith("aug/") and not isinstance(p, FixedParam | GridParam)
        ]
    return tuple(names)


def _check_pbt(spec: SearchSpec, problems: _Problems) -> None:
    scheduler = spec.study.scheduler
    if scheduler is None or scheduler.name != "pbt":
        return
    options, path = scheduler.options, ("study", "scheduler")
    interval = options.get("perturbation_interval", 1)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        problems.add(
            (*path, "perturbation_interval"),
            "study/scheduler/perturbation_interval",
            f"expected a whole number of epochs >= 1, got {interval!r}",
        )
    elif interval >= spec.budget.epochs:
        problems.add(
            (*path, "perturbation_interval"),
            "study/scheduler/perturbation_interval",
            f"{interval} >= budget/epochs ({spec.budget.epochs}): PBT would never perturb",
        )
    fraction = options.get("quantile_fraction", 0.25)
    if not _is_number(fraction) or not 0 < fraction <= 0.5:
        problems.add(
            (*path, "quantile_fraction"),
            "study/scheduler/quantile_fraction",
            f"expected a number in (0, 0.5], got {fraction!r}",
        )
    mutate = options.get("mutate")
    if mutate is not None and (
        not isinstance(mutate, list) or not all(isinstance(n, str) for n in mutate)
    ):
        problems.add((*path, "mutate"), "study/scheduler/mutate", "expected a list of names")
        return
    sampled = {p.name: p for p in spec.params if not isinstance(p, FixedParam | GridParam)}
    for name in mutate or ():
        if name not in sampled:
            problems.add(
                (*path, "mutate"),
                f"study/scheduler/mutate/{name}",
                f"not a sampled parameter of this space; sampled: {', '.join(sampled) or 'none'}",
            )
    if not pbt_mutated(spec):
        problems.add(
            (*path, "mutate"),
            "study/scheduler/mutate",
            "PBT needs parameters to mutate: list them, or sample some aug/ parameters",
        )


def _check_enqueue(spec: SearchSpec, problems: _Problems) -> None:
    """Enqueued configurations name existing parameters with values they can take."""
    from spaces.compile import same_value

    by_name = {p.name: p for p in spec.params}
    for i, point in enumerate(spec.study.enqueue):
        for name, value in point.items():
            path, key = ("study", "enqueue", str(i)), f"study/enqueue[{i}]/{name}"
            param = by_name.get(name)
            if param is None or isinstance(param, FixedParam):
                problems.add(path, key, "not a sampled parameter of this space")
                continue
            allowed = possible_values(param)
            if allowed is not None:
                ok = any(same_value(value, a) for a in allowed)
            else:
                ok = _is_number(value) and param.low <= value <= param.high
            if not ok:
                problems.add(path, key, f"{value!r} is outside {name}'s distribution")


def _parse_named(raw: Any, default: Any, cls: type, key: str, problems: _Problems) -> Any:
    if raw is None:
        return default
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        problems.add(
            ("study", key), f"study/{key}", f"expected {{name: ..., options...}}, got {raw!r}"
        )
        return default
    options = {k: v for k, v in raw.items() if k != "name"}
    return cls(name=raw["name"], options=options)


def parse_spec(
    data: Any,
    *,
    source: str,
    lines: dict[tuple[str, ...], int] | None = None,
    builtin_trainable: bool = True,
) -> SearchSpec:
    """Validate parsed YAML ``data`` into a :class:`SearchSpec`; raise :class:`SpecError`.

    Example:
        >>> spec = parse_spec(
        ...     {"params": {"mask/ratio": {"type": "float", "low": 0.5, "high": 0.9}}},
        ...     source="inline",
        ... )
        >>> spec.params[0]
        FloatParam(name='mask/ratio', low=0.5, high=0.9, log=False, step=None, when=())
    """
    problems = _Problems(source, lines or {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SpecError(
            [(source, 1, "", f"expected a mapping at the top level, got {type(data).__name__}")]
        )
    for k, message in _unknown(data.keys(), TOP_KEYS):
        problems.add((k,), k, message)

    study_raw = data.get("study", {}) or {}
    study = StudySpec()
    if not isinstance(study_raw, Mapping):
        problems.add(("study",), "study", "expected a mapping")
    else:
        study_keys = (
            "name",
            "objective",
            "sampler",
            "pruner",
            "scheduler",
            "enqueue",
            "storage",
            "loggers",
        )
        for k, message in _unknown(study_raw.keys(), study_keys):
            problems.add(("study", k), f"study/{k}", message)
        objectives = (
            _parse_objectives(study_raw["objective"], problems)
            if "objective" in study_raw
            else study.objectives
        )
        study = StudySpec(
            name=str(study_raw.get("name", study.name)),
            objectives=objectives or study.objectives,
            sampler=_parse_named(
                study_raw.get("sampler"), study.sampler, SamplerSpec, "sampler", problems
            ),
            pruner=_parse_named(
                study_raw.get("pruner"), study.pruner, PrunerSpec, "pruner", problems
            ),
            enqueue=_parse_enqueue(study_raw.get("enqueue"), problems),
            storage=_parse_storage(study_raw.get("storage"), problems),
            scheduler=_parse_named(
                study_raw.get("scheduler"), None, SchedulerSpec, "scheduler", problems
            ),
            loggers=_parse_loggers(study_raw.get("loggers"), problems),
        )
        if study.scheduler is not None:
            if study.scheduler.name not in TUNE_SCHEDULERS:
                problems.add(
                    ("study", "scheduler"),
                    "study/scheduler",
                    f"unknown Tune scheduler '{study.scheduler.name}'; "
                    f"valid: {', '.join(TUNE_SCHEDULERS)}",
                )
            valid = TUNE_SCHEDULERS.get(study.scheduler.name, tuple(study.scheduler.options))
            for key in sorted(set(study.scheduler.options) - set(valid)):
                problems.add(
                    ("study", "scheduler", key),
                    f"study/scheduler/{key}",
                    f"unknown option; valid: {', '.join(valid)}",
                )
            if "pruner" in study_raw and study.pruner.name != "none":
                problems.add(
                    ("study", "scheduler"),
                    "study/scheduler",
                    "a Tune scheduler replaces the Optuna pruner: set pruner: none",
                )
            study = dataclasses.replace(study, pruner=PrunerSpec("none", {}))

    budget = _parse_budget(data.get("budget", {}) or {}, problems)

    params: list[Param] = []
    raw_params = data.get("params", {}) or {}
    if not isinstance(raw_params, Mapping):
        problems.add(("params",), "params", "expected a mapping of name -> distribution")
        raw_params = {}
    for name, raw in raw_params.items():
        if not isinstance(name, str) or not name or name.startswith("/") or name.endswith("/"):
            problems.add(
                ("params", str(name)), f"params/{name}", "expected a name like 'mask/ratio'"
            )
            continue
        param = _parse_param(name, raw, problems)
        if param is not None:
            params.append(param)

    _check_conditions(params, problems)

    base: dict[str, Any] = {}
    for section in TRIAL_SECTIONS:
        if section in data:
            value = data[section]
            if not isinstance(value, Mapping):
                problems.add((section,), section, f"expected a mapping, got {value!r}")
                continue
            base[section] = value
    if "epochs" in base.get("train", {}):
        problems.add(("train", "epochs"), "train/epochs", "set the epochs in budget/epochs")

    description = data.get("description", "")
    if not isinstance(description, str):
        problems.add(("description",), "description", "expected a string")
        description = ""
    if problems.items:
        raise SpecError(problems.items)
    spec = SearchSpec(
        source=source,
        description=description.strip(),
        study=study,
        budget=budget,
        params=tuple(params),
        base=base,
    )
    spec = _check_grid_and_objectives(spec, data, problems)
    _check_study(spec, problems)
    _check_enqueue(spec, problems)
    _check_pbt(spec, problems)
    if builtin_trainable:  # a user's own trainable has its own config and metrics
        _check_against_trainables(spec, problems)
    if problems.items:
        raise SpecError(problems.items)
    return spec


def possible_values(param: Param) -> tuple[Any, ...] | None:
    """The values a parameter can take when they are finite (None for float/int ranges)."""
    if isinstance(param, CategoricalParam):
        return param.choices
    if isinstance(param, GridParam):
        return param.values
    if isinstance(param, FixedParam):
        return (param.value,)
    return None


def _check_conditions(params: list[Param], problems: _Problems) -> None:
    declared: dict[str, Param] = {}
    names = {p.name for p in params}
    for param in params:
        for other, values in param.when:
            path = ("params", param.name, "when", other)
            key = f"params/{param.name}/when/{other}"
            if other not in names:
                problems.add(path, key, f"condition on '{other}', which is not a parameter")
            elif other not in declared:
                problems.add(path, key, f"condition on '{other}', declared after this one")
            else:
                allowed = possible_values(declared[other])
                if allowed is None:
                    problems.add(path, key, f"'{other}' is continuous; conditions need choices")
                    continue
                from spaces.compile import same_value

                for v in values:
                    if not any(same_value(v, a) for a in allowed):
                        problems.add(
                            path,
                            key,
                            f"{v!r} is not a value of '{other}' ({', '.join(map(repr, allowed))})",
                        )
        declared[param.name] = param


def _parse_budget(raw: Any, problems: _Problems) -> Budget:
    default = Budget()
    if not isinstance(raw, Mapping):
        problems.add(("budget",), "budget", "expected a mapping")
        return default
    valid = ("trials", "epochs", "concurrency", "resources", "max_failures")
    for k, message in _unknown(raw.keys(), valid):
        problems.add(("budget", k), f"budget/{k}", message)
    retries = raw.get("max_failures", default.max_failures)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        problems.add(
            ("budget", "max_failures"),
            "budget/max_failures",
            f"expected an integer >= 0 (retries of a failed trial), got {retries!r}",
        )
        retries = default.max_failures
    values: dict[str, Any] = {}
    for key in ("trials", "epochs", "concurrency"):
        value = raw.get(key, getattr(default, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.add(
                ("budget", key), f"budget/{key}", f"expected an integer >= 1, got {value!r}"
            )
            value = getattr(default, key)
        values[key] = value
    resources = raw.get("resources", {}) or {}
    if not isinstance(resources, Mapping):
        problems.add(("budget", "resources"), "budget/resources", "expected {cpu: N, gpu: F}")
        resources = {}
    for k, message in _unknown(resources.keys(), ("cpu", "gpu")):
        problems.add(("budget", "resources", k), f"budget/resources/{k}", message)
    for key in ("cpu", "gpu"):
        value = resources.get(key, getattr(default, key))
        if (
            not _is_number(value)
            or value < 0
            or (key == "cpu" and value == 0 and not resources.get("gpu"))
        ):
            problems.add(
                ("budget", "resources", key),
                f"budget/resources/{key}",
                f"expected a number >= 0 (fractions allowed), got {value!r}",
            )
            value = getattr(default, key)
        values[key] = float(value)
    return Budget(**values, max_failures=retries)


def _check_grid_and_objectives(
    spec: SearchSpec, data: Mapping[str, Any], problems: _Problems
) -> SearchSpec:
    """Grid sweeps run every point (x repeats); several objectives need a sampler for them."""
    from spaces.compile import grid_size
    from spaces.study import MULTI_OBJECTIVE_SAMPLERS

    study = spec.study
    if len(study.objectives) > 1 and study.sampler.name not in MULTI_OBJECTIVE_SAMPLERS:
        problems.add(
            ("study", "sampler"),
            "study/sampler",
            f"'{study.sampler.name}' handles one objective; with several use one of "
            f"{', '.join(sorted(MULTI_OBJECTIVE_SAMPLERS))}",
        )
    if study.sampler.name != "grid":
        return spec
    repeats = study.sampler.options.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        problems.add(
            ("study", "sampler", "repeats"),
            "study/sampler/repeats",
            f"expected an integer >= 1, got {repeats!r}",
        )
        return spec
    for p in spec.params:
        if isinstance(p, FloatParam | IntParam):
            problems.add(
                ("params", p.name),
                f"params/{p.name}",
                "the grid sampler needs listed values (type: grid), not a range",
            )
        if p.when:
            problems.add(
                ("params", p.name, "when"),
                f"params/{p.name}/when",
                "conditions are not supported with the grid sampler",
            )
    size = grid_size(spec)
    given = (data.get("budget") or {}).get("trials")
    if given is not None and given > size:
        problems.add(
            ("budget", "trials"),
            "budget/trials",
            f"the grid has {size} points (values x repeats); trials must be at most {size}",
        )
    # a full pass by default; fewer trials (e.g. a smoke run) cover part of the grid
    trials = size if given is None or given > size else given
    return dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, trials=trials))


def _check_study(spec: SearchSpec, problems: _Problems) -> None:
    """Build the sampler and pruner once, so that a bad name or option fails here."""
    from spaces.compile import grid_search_space
    from spaces.study import build_pruner, build_sampler
    from trainables._registry import UnknownNameError

    try:
        build_sampler(
            spec.study.sampler.name,
            spec.study.sampler.options,
            search_space=grid_search_space(spec),
        )
    except (UnknownNameError, ValueError) as err:
        problems.add(("study", "sampler"), "study/sampler", str(err))
    try:
        build_pruner(spec.study.pruner.name, spec.study.pruner.options)
    except (UnknownNameError, ValueError) as err:
        problems.add(("study", "pruner"), "study/pruner", str(err))


def _check_against_trainables(spec: SearchSpec, problems: _Problems) -> None:
    """Compile the space at each param's extremes and parse the trial config."""
    from spaces.compile import representative_configs
    from trainables.config import ConfigError, TrialConfig
    from trainables.probes import probe_metric_names

    names = set(spec.param_names)
    for config in representative_configs(spec):
        try:
            cfg = TrialConfig.from_dict(config)
        except ConfigError as err:
            parts = tuple(err.path.split("/")) if err.path else ()
            # The problem is in a param when the key path starts with one.
            param = next((n for n in names if err.path == n or err.path.startswith(n + "/")), None)
            if param is not None:
                problems.add(("params", param), f"params/{param}", err.message)
            else:
                problems.add(parts, err.path, err.message)
            return
    from trainables.objectives import OBJECTIVE_WEIGHTS

    metrics = {"loss", "epoch", "lr", "train_time_s", "trial_time_s"}
    metrics.update(f"loss_{t}" for t in OBJECTIVE_WEIGHTS.get(cfg.loss.name, {}))
    for probe in cfg.probe.names:
        metrics.update(probe_metric_names(probe))
    for i, objective in enumerate(spec.study.objectives):
        if objective.metric not in metrics:
            problems.add(
                ("study", "objective"),
                "study/objective"
                + (f"[{i}]" if len(spec.study.objectives) > 1 else "")
                + "/metric",
                f"no probe reports '{objective.metric}'; reported: {', '.join(sorted(metrics))}",
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
    data, lines = _load_with_includes(Path(path), source, seen=())
    if overrides:
        data = apply_overrides(data, overrides, source=source)
    return parse_spec(data, source=source, lines=lines, builtin_trainable=builtin_trainable)


def _load_with_includes(
    path: Path, source: str, *, seen: tuple[Path, ...]
) -> tuple[Any, dict[tuple[str, ...], Any]]:
    """Load ``path``; if it has ``include: base.yaml``, merge it over the base.

    Mappings merge key by key (``params`` entry by entry); ``null`` removes a
    key of the base. Lines of keys that come from the base point into the base.
    """
    try:
        data, lines = load_with_lines(read_text(path), source)
    except YamlError as err:
        raise SpecError([(err.source, err.line, "", err.message)]) from None
    if not isinstance(data, Mapping) or "include" not in data:
        return data, dict(lines)
    include = data["include"]
    line = lines.get(("include",), 0)
    if not isinstance(include, str):
        raise SpecError([(source, line, "include", "expected the path of a base space file")])
    base_path = (path.parent / include).resolve()
    if base_path in seen or base_path == path.resolve():
        raise SpecError([(source, line, "include", f"{include} includes itself")])
    if not base_path.exists():
        raise SpecError([(source, line, "include", f"no such file: {base_path}")])
    base, base_lines = _load_with_includes(
        base_path, str(path.parent / include), seen=(*seen, path.resolve())
    )
    if not isinstance(base, Mapping):
        raise SpecError([(source, line, "include", f"{include} is not a mapping")])
    merged_lines: dict[tuple[str, ...], Any] = {
        k: v if isinstance(v, tuple) else (str(path.parent / include), v)
        for k, v in base_lines.items()
    }
    merged_lines.update(lines)
    child = {k: v for k, v in data.items() if k != "include"}
    return _merge(base, child), merged_lines


def _merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            # params merge per parameter: a child's entry replaces the base's whole entry
            if key == "params":
                merged = dict(out[key])
                for name, entry in value.items():
                    if entry is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = entry
                out[key] = merged
            else:
                out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(data: Any, overrides: Mapping[str, Any], *, source: str) -> Any:
    """Set ``a.b.c=value`` overrides (from ``--set``) into a copy of the parsed YAML."""
    import copy

    data = copy.deepcopy(data) if isinstance(data, Mapping) else {}
    for dotted, value in overrides.items():
        keys = dotted.split(".")
        node = data
        for k in keys[:-1]:
            if not isinstance(node.get(k), Mapping):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = value
    return data


def shipped_spaces() -> dict[str, Path]:
    """The YAML files shipped in this package, by stem."""
    here = Path(__file__).parent
    return {p.stem: p for p in sorted(here.glob("*.yaml"))}
