"""The data model of a space: parameter kinds and the frozen study settings.

Each parameter kind carries its own behaviour (Optuna's distributions are the
model): how it is read from YAML (:meth:`parse`), sampled (:meth:`suggest`),
which values it can take (:meth:`values`), its ends for validation
(:meth:`ends`), its grid axis, its Tune domain for PBT, its descriptions and
its serialisation (:meth:`to_dict`). Code elsewhere asks the parameter; it
never switches on its type.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spaces.errors import Path, Problems
from trainables.errors import shown

__all__ = [
    "KINDS",
    "Budget",
    "CategoricalParam",
    "Condition",
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
    "StudySpec",
    "is_number",
    "same_value",
]


Condition = tuple[tuple[str, tuple[Any, ...]], ...]
"""``((param, allowed values), ...)``: the parameter exists only when every one holds."""


def is_number(value: Any) -> bool:
    """A real number, not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type: ``True`` is not the choice ``1``.

    Example:
        >>> same_value(True, 1), same_value(1, 1)
        (False, True)
    """
    return a == b and type(a) is type(b)


class _Param:
    """Behaviour shared by every kind; each kind is a frozen dataclass below."""

    kind: ClassVar[str]
    keys: ClassVar[tuple[str, ...]]
    name: str
    when: Condition

    sampled: ClassVar[bool] = True
    """Whether the sampler draws it (a fixed value is only recorded)."""
    is_range: ClassVar[bool] = False
    """A numeric range (float/int) rather than a finite list of values."""

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the conditions hold for the values sampled so far."""
        return all(
            name in values and any(same_value(values[name], a) for a in allowed)
            for name, allowed in self.when
        )

    def possible_values(self) -> tuple[Any, ...] | None:
        """The values it can take when they are finite (None for a range)."""
        return None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one it can take."""
        return any(same_value(value, v) for v in self.possible_values() or ())

    def ends(self) -> tuple[Any, ...]:
        """The values validation visits: each choice, or a range's two ends."""
        return self.possible_values() or ()

    def grid_axis(self) -> list[Any] | None:
        """Its axis of the ``grid`` sampler (None: not an axis)."""
        return None

    def _body(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def describe(self) -> str:
        """Every field in one line (what a resume diff shows)."""
        data = {k: v for k, v in self._body().items() if k not in ("name", "when")}
        text = f"{self.kind} " + ", ".join(f"{k}={v!r}" for k, v in data.items())
        if self.when:
            text += " when " + ", ".join(f"{n} in {list(v)}" for n, v in self.when)
        return text

    def display(self) -> str:
        """A short form for ``spaces show``."""
        return f"{self.kind} {list(self.possible_values() or ())}"

    def to_dict(self) -> dict[str, Any]:
        """The YAML entry that parses back to this parameter."""
        out = {"type": self.kind, **self._entry()}
        if self.when:
            out["when"] = {n: list(v) if len(v) > 1 else v[0] for n, v in self.when}
        return out

    def _entry(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, Any], path: Path, problems: Problems) -> Any:
        """Build from the YAML entry ``raw`` (its keys already checked); None on problems."""
        raise NotImplementedError


def _step_lowers_high(kind: str, low: float, high: float, step: float) -> bool:
    """Whether Optuna would replace ``high`` because ``high - low`` is not a multiple of step."""
    import optuna

    cls = optuna.distributions.FloatDistribution
    if kind == "int":
        cls = optuna.distributions.IntDistribution
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = cls(low, high, step=step)
    return bool(caught) and dist.high != high


class _Range(_Param):
    """Float and int ranges: bounds, log scale, step."""

    keys = ("type", "low", "high", "log", "step", "when")
    is_range = True
    low: Any
    high: Any
    log: bool
    step: Any

    def ends(self) -> tuple[Any, ...]:
        return (self.low, self.high)

    def contains(self, value: Any) -> bool:
        return is_number(value) and self.low <= value <= self.high

    def display(self) -> str:
        extra = (" log" if self.log else "") + (
            f" step {self.step}" if self.step not in (None, 1) else ""
        )
        return f"{self.kind} [{self.low}, {self.high}]{extra}"

    def _entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"low": self.low, "high": self.high}
        if self.log:
            entry["log"] = True
        if self.step is not None and not (self.kind == "int" and self.step == 1):
            entry["step"] = self.step
        return entry

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, Any], path: Path, problems: Problems) -> Any:
        integer = cls.kind == "int"
        ok = True
        for bound in ("low", "high"):
            value = raw.get(bound)
            if not is_number(value) or not math.isfinite(value):
                problems.add((*path, bound), f"expected a number, got {shown(value)}")
                ok = False
            elif integer and not float(value).is_integer():
                problems.add((*path, bound), f"expected an integer, got {shown(value)}")
                ok = False
        log = raw.get("log", False)
        if not isinstance(log, bool):
            problems.add((*path, "log"), f"expected true or false, got {shown(log)}")
            ok = False
        step = raw.get("step")
        if step is not None and (not is_number(step) or step <= 0):
            problems.add((*path, "step"), f"expected a number > 0, got {shown(step)}")
            ok = False
        if not ok:
            return None
        low, high = raw["low"], raw["high"]
        if low > high:
            problems.add(path, f"low ({low}) > high ({high})")
        elif log and low <= 0:
            problems.add((*path, "low"), f"log scale needs low > 0, got {low}")
        elif log and step is not None and not (integer and step == 1):
            problems.add((*path, "step"), "step cannot be combined with log")
        elif (
            step is not None
            and not log
            and high > low
            and _step_lowers_high(cls.kind, low, high, step)
        ):
            problems.add(
                (*path, "step"),
                f"high - low ({high - low:g}) is not a multiple of step ({step:g}); "
                "Optuna would silently lower high",
            )
        elif integer and step is not None and not float(step).is_integer():
            problems.add((*path, "step"), f"expected an integer, got {shown(step)}")
        else:
            return cls._make(name, low, high, log, step)
        return None

    @classmethod
    def _make(cls, name: str, low: Any, high: Any, log: bool, step: Any) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class FloatParam(_Range):
    """``suggest_float(name, low, high, log=..., step=...)``."""

    kind: ClassVar[str] = "float"
    name: str
    low: float
    high: float
    log: bool = False
    step: float | None = None
    when: Condition = ()

    @classmethod
    def _make(cls, name: str, low: Any, high: Any, log: bool, step: Any) -> FloatParam:
        return cls(name, float(low), float(high), log, None if step is None else float(step))

    def suggest(self, trial: Any) -> float:
        """Sample it on an ``optuna.Trial``."""
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def pbt_domain(self, tune: Any) -> Any:
        """Its domain in Ray Tune's search-space API (``tune`` is ``ray.tune``)."""
        if self.log:
            return tune.loguniform(self.low, self.high)
        if self.step:
            return tune.quniform(self.low, self.high, self.step)
        return tune.uniform(self.low, self.high)

    def coerce(self, value: Any) -> float:
        return float(value)

    def ends(self) -> tuple[Any, ...]:
        """Its two ends and, when both are integers, a value between them that is not
        one (on the step grid): a float range given to an integer key (a batch size)
        passes at its ends, and a trial would sample 23.7.

        Example:
            >>> FloatParam("b", 16, 64).ends(), FloatParam("b", 16, 64, step=8).ends()
            ((16.0, 16.5, 64.0), (16.0, 64.0))
        """
        low, high = float(self.low), float(self.high)
        if not (low.is_integer() and high.is_integer()) or low >= high:
            return (low, high)
        steps = [low + k * self.step for k in range(1, 65)] if self.step else [low + 0.5]
        inner = next((v for v in steps if v < high and not v.is_integer()), None)
        return (low, high) if inner is None else (low, inner, high)


@dataclass(frozen=True)
class IntParam(_Range):
    """``suggest_int(name, low, high, log=..., step=...)``."""

    kind: ClassVar[str] = "int"
    name: str
    low: int
    high: int
    log: bool = False
    step: int = 1
    when: Condition = ()

    @classmethod
    def _make(cls, name: str, low: Any, high: Any, log: bool, step: Any) -> IntParam:
        return cls(name, int(low), int(high), log, 1 if step is None else int(step))

    def suggest(self, trial: Any) -> int:
        return trial.suggest_int(self.name, self.low, self.high, log=self.log, step=self.step)

    def ends(self) -> tuple[Any, ...]:
        """Its two ends, or every value when it has at most 16: a value inside may
        be the bad one (a patch size that does not divide the image)."""
        values = range(self.low, self.high + 1, self.step)
        return tuple(values) if len(values) <= 16 else (self.low, self.high)

    def pbt_domain(self, tune: Any) -> Any:
        if self.log:
            return tune.lograndint(self.low, self.high + 1)
        return tune.qrandint(self.low, self.high, self.step)

    def coerce(self, value: Any) -> int:
        return round(value)


class _Finite(_Param):
    """Categorical and grid parameters: a list of plain values."""

    field_name: ClassVar[str]

    def _choices(self) -> tuple[Any, ...]:
        return getattr(self, self.field_name)

    def possible_values(self) -> tuple[Any, ...]:
        return self._choices()

    def grid_axis(self) -> list[Any]:
        return list(self._choices())

    def suggest(self, trial: Any) -> Any:
        return trial.suggest_categorical(self.name, list(self._choices()))

    def pbt_domain(self, tune: Any) -> list[Any]:
        return list(self._choices())

    def coerce(self, value: Any) -> Any:
        return value

    def _entry(self) -> dict[str, Any]:
        return {self.field_name: list(self._choices())}

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, Any], path: Path, problems: Problems) -> Any:
        key = cls.field_name
        choices = raw.get(key)
        if not isinstance(choices, list) or not choices:
            problems.add((*path, key), "expected a non-empty list")
            return None
        for i, c in enumerate(choices):
            if not (c is None or isinstance(c, bool | int | float | str)):
                problems.add(
                    (*path, key, i), f"expected a number, string, bool or null; got {shown(c)}"
                )
                return None
        if len(set(map(repr, choices))) != len(choices):
            problems.add((*path, key), f"duplicate {key}")
            return None
        return cls(name, tuple(choices))


@dataclass(frozen=True)
class CategoricalParam(_Finite):
    """``suggest_categorical(name, choices)``."""

    kind: ClassVar[str] = "categorical"
    keys: ClassVar[tuple[str, ...]] = ("type", "choices", "when")
    field_name: ClassVar[str] = "choices"
    name: str
    choices: tuple[Any, ...]
    when: Condition = ()


@dataclass(frozen=True)
class GridParam(_Finite):
    """A grid axis: every value is run (with the ``grid`` sampler), in order.

    Other samplers treat it as a categorical choice among ``values``.
    """

    kind: ClassVar[str] = "grid"
    keys: ClassVar[tuple[str, ...]] = ("type", "values", "when")
    field_name: ClassVar[str] = "values"
    name: str
    values: tuple[Any, ...]
    when: Condition = ()


@dataclass(frozen=True)
class FixedParam(_Param):
    """A constant: not sampled, recorded on the trial, set in its config."""

    kind: ClassVar[str] = "fixed"
    keys: ClassVar[tuple[str, ...]] = ("type", "value", "when")
    sampled: ClassVar[bool] = False
    name: str
    value: Any
    when: Condition = ()

    def possible_values(self) -> tuple[Any, ...]:
        return (self.value,)

    def suggest(self, trial: Any) -> Any:
        return self.value

    def display(self) -> str:
        return f"fixed {self.value!r}"

    def _entry(self) -> dict[str, Any]:
        return {"value": self.value}

    @classmethod
    def parse(cls, name: str, raw: Mapping[str, Any], path: Path, problems: Problems) -> Any:
        if "value" not in raw:
            problems.add(path, "a fixed parameter needs 'value'")
            return None
        return cls(name, raw["value"])


Param = FloatParam | IntParam | CategoricalParam | GridParam | FixedParam

#: Parameter kinds by their YAML ``type``.
KINDS: dict[str, type] = {
    cls.kind: cls for cls in (FloatParam, IntParam, CategoricalParam, GridParam, FixedParam)
}


@dataclass(frozen=True)
class Objective:
    """A reported metric and its direction (``maximize`` or ``minimize``).

    A spec may leave the direction out (None while parsing): the checks give it
    the metric's own.
    """

    metric: str
    direction: str | None = "maximize"


@dataclass(frozen=True)
class SamplerSpec:
    """An Optuna sampler by name with its options written out (seed, multivariate, ...).

    The parser fills every option the spec leaves out from the sampler's own
    defaults (:mod:`spaces.study`, the one place they are stated), so the
    resolved ``spec.yaml`` says exactly what ran.
    """

    name: str = "tpe"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrunerSpec:
    """An Optuna pruner by name with its options (defaults filled as for samplers)."""

    name: str = "median"
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchedulerSpec:
    """A Ray Tune scheduler used instead of an Optuna pruner (``asha`` or ``pbt``)."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


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

    def to_dict(self) -> dict[str, Any]:
        objectives = [{"metric": o.metric, "direction": o.direction} for o in self.objectives]
        out: dict[str, Any] = {
            "name": self.name,
            "objective": objectives[0] if len(objectives) == 1 else objectives,
            "sampler": {"name": self.sampler.name, **dict(self.sampler.options)},
            "pruner": {"name": self.pruner.name, **dict(self.pruner.options)},
        }
        if self.enqueue:
            out["enqueue"] = [dict(p) for p in self.enqueue]
        if self.storage:
            out["storage"] = self.storage
        if self.scheduler:
            out["scheduler"] = {"name": self.scheduler.name, **dict(self.scheduler.options)}
        if self.loggers:
            out["loggers"] = {k: dict(v) for k, v in self.loggers.items()}
        return out


@dataclass(frozen=True)
class Budget:
    """How much to run: trials, epochs per trial, concurrency, resources per trial,
    how often Tune retries a trial that failed (from its last checkpoint), how
    many other seeds the best configuration re-runs with at the end (the
    noise floor; 0: none), and what a configuration sampled a second time
    trains with (``repeated_config``): ``next_seed``, the next ``train.seed``
    none of its earlier trials used (with the built-in trainable: the same
    seed would train the same model again), or ``same_seed``."""

    trials: int = 20
    epochs: int = 30
    concurrency: int = 2
    cpu: float = 1.0
    gpu: float = 0.0
    max_failures: int = 0
    noise_seeds: int = 2
    repeated_config: str = "next_seed"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "trials": self.trials,
            "epochs": self.epochs,
            "concurrency": self.concurrency,
            "resources": {"cpu": self.cpu, "gpu": self.gpu},
        }
        if self.max_failures:
            out["max_failures"] = self.max_failures
        if self.noise_seeds != Budget.noise_seeds:
            out["noise_seeds"] = self.noise_seeds
        if self.repeated_config != Budget.repeated_config:
            out["repeated_config"] = self.repeated_config
        return out


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
        notes: located advice the checks gave (the space runs, perhaps not as
            meant): ``spaces check`` prints it, ``run`` logs it; not saved.
        lines: key path -> its line in ``source`` (as :class:`~spaces.errors.Problems`
            reads them), to locate what is found later (data that cannot be read).
    """

    source: str
    description: str
    study: StudySpec
    budget: Budget
    params: tuple[Param, ...]
    base: Mapping[str, Any]
    notes: tuple[str, ...] = field(default=(), compare=False, repr=False)
    lines: Mapping[tuple[str, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def objective(self) -> Objective:
        """The primary objective."""
        return self.study.objectives[0]

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def sampled(self) -> tuple[Param, ...]:
        """The parameters the sampler draws (every kind but ``fixed``)."""
        return tuple(p for p in self.params if p.sampled)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec as plain YAML-able data (what ``RUN_DIR/spec.yaml`` holds)."""
        out: dict[str, Any] = {
            "description": self.description,
            "study": self.study.to_dict(),
            "budget": self.budget.to_dict(),
            "params": {p.name: p.to_dict() for p in self.params},
        }
        out.update(_plain(self.base))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
