"""Optuna samplers and pruners by name: the registries a space's ``study`` section names.

Each entry maps the options written in the spec to an Optuna object. Its
keyword defaults are the project's defaults, stated once:
:func:`resolved_options` writes them into the parsed spec, so a spec that
names ``sampler: tpe`` and one that leaves the sampler out run the same study,
and the resolved ``spec.yaml`` pins every option (Optuna's own defaults change
between releases). The Ray Tune schedulers and logger callbacks a spec may
name, with their options, are declared here too (Ray builds them in
:mod:`search.tuner`), so that a space is checked without importing Ray.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import optuna

from trainables._registry import REQUIRED, Registry

__all__ = [
    "LOGGERS",
    "MULTI_OBJECTIVE_SAMPLERS",
    "PRUNERS",
    "SAMPLERS",
    "TUNE_SCHEDULERS",
    "build_pruner",
    "build_sampler",
    "register_pruner",
    "register_sampler",
    "resolved_options",
    "storage_file",
    "storage_problem",
    "storage_scheme",
]

SAMPLERS: Registry[Callable[..., optuna.samplers.BaseSampler]] = Registry(
    "sampler", reserved=("search_space",)
)
register_sampler = SAMPLERS.register
PRUNERS: Registry[Callable[..., optuna.pruners.BasePruner]] = Registry("pruner")
register_pruner = PRUNERS.register


@register_sampler("tpe")
def _tpe(
    *,
    seed: int | None = 0,
    multivariate: bool = True,
    constant_liar: bool = True,
    n_startup_trials: int = 8,
    group: bool = False,
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=multivariate,
        constant_liar=constant_liar,
        n_startup_trials=n_startup_trials,
        group=group,
    )


@register_sampler("random")
def _random(*, seed: int | None = 0) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=seed)


@register_sampler("gp")
def _gp(
    *, seed: int | None = 0, n_startup_trials: int = 10, deterministic_objective: bool = False
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        deterministic_objective=deterministic_objective,
    )


@register_sampler("cmaes")
def _cmaes(
    *,
    seed: int | None = 0,
    n_startup_trials: int = 1,
    sigma0: float | None = None,
    restart_strategy: str | None = None,
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.CmaEsSampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        sigma0=sigma0,
        restart_strategy=restart_strategy,
    )


@register_sampler("qmc")
def _qmc(
    *, seed: int | None = 0, qmc_type: str = "sobol", scramble: bool = True
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.QMCSampler(qmc_type=qmc_type, scramble=scramble, seed=seed)


@register_sampler("nsga2")
def _nsga2(
    *,
    seed: int | None = 0,
    population_size: int = 50,
    mutation_prob: float | None = None,
    crossover_prob: float = 0.9,
) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(
        seed=seed,
        population_size=population_size,
        mutation_prob=mutation_prob,
        crossover_prob=crossover_prob,
    )


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's GridSampler for ask/tell use: the budget (not the sampler) ends the run.

    ``GridSampler.after_trial`` calls ``study.stop()`` once the grid is covered,
    which raises outside ``study.optimize`` and would lose the last trial's tell.
    """

    def after_trial(self, study, trial, state, values) -> None:
        return None


@register_sampler("grid")
def _grid(
    *, search_space: dict[str, list] | None = None, seed: int | None = 0, repeats: int = 1
) -> optuna.samplers.BaseSampler:
    # ``repeats`` is an axis of ``search_space`` (see spaces.compile.grid_search_space)
    return AskTellGridSampler(search_space or {}, seed=seed)


#: Samplers that handle several objectives.
MULTI_OBJECTIVE_SAMPLERS = frozenset({"tpe", "random", "nsga2", "qmc", "grid", "gp"})


@register_pruner("median")
def _median(
    *,
    n_startup_trials: int = 5,
    n_warmup_steps: int = 5,
    interval_steps: int = 1,
    n_min_trials: int = 1,
) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(
        n_startup_trials=n_startup_trials,
        n_warmup_steps=n_warmup_steps,
        interval_steps=interval_steps,
        n_min_trials=n_min_trials,
    )


@register_pruner("none")
def _none() -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


@register_pruner("percentile")
def _percentile(
    *,
    percentile: float = 25.0,
    n_startup_trials: int = 5,
    n_warmup_steps: int = 0,
    interval_steps: int = 1,
    n_min_trials: int = 1,
) -> optuna.pruners.BasePruner:
    return optuna.pruners.PercentilePruner(
        percentile,
        n_startup_trials=n_startup_trials,
        n_warmup_steps=n_warmup_steps,
        interval_steps=interval_steps,
        n_min_trials=n_min_trials,
    )


@register_pruner("successive_halving")
def _successive_halving(
    *,
    min_resource: str | int = "auto",
    reduction_factor: int = 4,
    min_early_stopping_rate: int = 0,
    bootstrap_count: int = 0,
) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min_resource,
        reduction_factor=reduction_factor,
        min_early_stopping_rate=min_early_stopping_rate,
        bootstrap_count=bootstrap_count,
    )


@register_pruner("hyperband")
def _hyperband(
    *,
    min_resource: int = 1,
    max_resource: str | int = "auto",
    reduction_factor: int = 3,
    bootstrap_count: int = 0,
) -> optuna.pruners.BasePruner:
    return optuna.pruners.HyperbandPruner(
        min_resource=min_resource,
        max_resource=max_resource,
        reduction_factor=reduction_factor,
        bootstrap_count=bootstrap_count,
    )


@register_pruner("wilcoxon")
def _wilcoxon(*, p_threshold: float = 0.1, n_startup_steps: int = 2) -> optuna.pruners.BasePruner:
    return optuna.pruners.WilcoxonPruner(p_threshold=p_threshold, n_startup_steps=n_startup_steps)


@register_pruner("threshold")
def _threshold(
    *,
    lower: float | None = None,
    upper: float | None = None,
    n_warmup_steps: int = 0,
    interval_steps: int = 1,
) -> optuna.pruners.BasePruner:
    return optuna.pruners.ThresholdPruner(
        lower=lower, upper=upper, n_warmup_steps=n_warmup_steps, interval_steps=interval_steps
    )


@register_pruner("patient")
def _patient(
    *, patience: int, min_delta: float = 0.0, wrapped: Mapping[str, Any] | str | None = None
) -> optuna.pruners.BasePruner:
    """Patience around another pruner (``wrapped: {name: median, ...}``), or alone."""
    inner = None
    if wrapped is not None:
        spec = {"name": wrapped} if isinstance(wrapped, str) else dict(wrapped)
        if "name" not in spec:
            raise ValueError("wrapped needs a name, e.g. {name: median}")
        name = spec.pop("name")
        inner = build_pruner(name, spec)
    return optuna.pruners.PatientPruner(inner, patience=patience, min_delta=min_delta)


def _build(registry: Registry, kind: str, name: str, options: Mapping[str, Any]) -> Any:
    factory = registry.lookup(name)
    try:
        return factory(**dict(options))
    except TypeError as err:
        raise ValueError(
            f"{kind} '{name}': " + str(err).replace(f"{factory.__name__}() ", "")
        ) from None


def build_sampler(
    name: str, options: Mapping[str, Any], *, search_space: dict[str, list] | None = None
) -> optuna.samplers.BaseSampler:
    """``build_sampler("tpe", {"seed": 0})`` -> a seeded ``TPESampler``.

    ``search_space`` is the grid of the ``grid`` sampler (ignored by the others).
    """
    if name == "grid":
        options = {**dict(options), "search_space": search_space}
    return _build(SAMPLERS, "sampler", name, options)


def build_pruner(name: str, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """``build_pruner("median", {"n_warmup_steps": 5})`` -> a ``MedianPruner``."""
    return _build(PRUNERS, "pruner", name, options)


def resolved_options(
    kind: str, name: str, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``options`` with every option left out filled from the ``kind``'s registered defaults.

    Example:
        >>> resolved_options("pruner", "median", {"n_warmup_steps": 2})
        {'n_startup_trials': 5, 'n_warmup_steps': 2, 'interval_steps': 1, 'n_min_trials': 1}
    """
    registry = SAMPLERS if kind == "sampler" else PRUNERS
    out: dict[str, Any] = {}
    if name in registry:  # an unknown name is reported by the checks
        out = {k: v for k, v in registry.options(name).items() if v is not REQUIRED}
    out.update(options or {})
    return out


#: Ray Tune schedulers selectable from ``study.scheduler``: option -> (type, limit), checked
#: before Ray sees them (:func:`trainables._registry.check_value`; PBT's interval and
#: quantile are checked against the budget in :mod:`spaces.checks`).
TUNE_SCHEDULERS: dict[str, dict[str, tuple[str, Any]]] = {
    "asha": {"grace_period": ("int", "[1, inf)"), "reduction_factor": ("float", "(1, inf)")},
    "pbt": {
        "perturbation_interval": ("", None),
        "burn_in_period": ("int", "[0, inf)"),
        "quantile_fraction": ("", None),
        "resample_probability": ("float", "[0, 1]"),
        "mutate": ("", None),
        "seed": ("int | None", "[0, inf)"),
    },
}

#: Ray Tune logger callbacks selectable from ``study.loggers``: options and the package each needs.
LOGGERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": ((), "tensorboardX"),
    "csv": ((), "csv"),
    "mlflow": (("tracking_uri", "experiment_name", "tags", "save_artifact"), "mlflow"),
    "wandb": (("project", "group", "entity", "mode", "api_key_file", "log_config"), "wandb"),
}


#: drivers SQLAlchemy knows for each database server, in the order they are suggested
_DRIVERS = {"postgresql": ("psycopg2", "psycopg", "pg8000"), "mysql": ("pymysql", "mysqldb")}


def storage_file(url: str) -> Path | None:
    """The file of a SQLite or journal storage URL (None for a database server).

    Example:
        >>> storage_file("journal:study.log"), storage_file("postgresql+psycopg2://h/db")
        (PosixPath('study.log'), None)
    """
    scheme = storage_scheme(url)
    return None if scheme is None else Path(url.removeprefix(scheme))


def storage_scheme(url: str) -> str | None:
    """The scheme of a file storage URL, ``sqlite:///`` or ``journal:`` (None: a server)."""
    return next((s for s in ("sqlite:///", "journal:") if url.startswith(s)), None)


def storage_problem(url: str) -> str | None:
    """What keeps the storage URL ``url`` from opening, known without connecting:
    a file storage's folder that does not exist (a relative path lies in the run
    directory, which ``run`` creates), a database URL SQLAlchemy cannot parse, or
    its driver not installed (naming one that is). None when nothing is known wrong.

    Example:
        >>> storage_problem("sqlite:///no/such/folder/x.db")  # relative: in the run directory
        >>> storage_problem("sqlite:////no/such/folder/x.db")
        'the folder /no/such/folder does not exist'
        >>> storage_problem("mysql+nosuchdriver://host/db")
        "SQLAlchemy has no driver 'mysql+nosuchdriver'"
    """
    path = storage_file(url)
    if path is not None:
        if path.parent.is_absolute() and not path.parent.is_dir():
            return f"the folder {path.parent} does not exist"
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        dialect = parsed.get_dialect()
    except NoSuchModuleError:  # an ArgumentError too
        return f"SQLAlchemy has no driver '{url.partition(':')[0]}'"
    except ArgumentError:
        return "SQLAlchemy cannot parse it as a database URL"
    try:
        dialect.import_dbapi()
    except ImportError as err:
        backend = parsed.get_backend_name()
        installed = [d for d in _DRIVERS.get(backend, ()) if _imports(f"{backend}+{d}")]
        hint = (
            f"; installed: {', '.join(installed)}, e.g. {backend}+{installed[0]}://..."
            if installed
            else ""
        )
        return f"its driver ({parsed.get_driver_name()}) is not installed: {err}{hint}"
    return None


def _imports(drivername: str) -> bool:
    """Whether the SQLAlchemy driver ``backend+driver`` imports."""
    from sqlalchemy.engine import make_url

    try:
        make_url(f"{drivername}://").get_dialect().import_dbapi()
    except ImportError:
        return False
    return True
