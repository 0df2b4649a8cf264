"""Cross-checks of a parsed spec: conditions, grids, objectives, study, PBT, trainables.

:func:`check_spec` runs after :mod:`spaces.parse` has built a
:class:`~spaces.model.SearchSpec`: each check adds located problems, and the
spec is refused with all of them at once. With the built-in trainable, the
space is compiled at every parameter's ends and each resulting trial config
is validated exactly as a trial would, every problem of it at once
(:func:`trainables.validate.config_problems`), against the torch-free snapshot
of the registries (:mod:`trainables.catalogue`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

from spaces.compile import grid_search_space, grid_size, representative_configs
from spaces.errors import Problems
from spaces.model import FloatParam, Param, SearchSpec, is_number
from spaces.study import (
    MULTI_OBJECTIVE_SAMPLERS,
    PRUNERS,
    SAMPLERS,
    build_pruner,
    build_sampler,
    storage_problem,
)
from trainables._registry import UnknownNameError, check_value
from trainables.catalogue import LOOP_METRICS, shipped
from trainables.config import ConfigError, num_masked
from trainables.errors import shown
from trainables.geometry import token_count
from trainables.validate import config_problems

__all__ = ["add_trial_problems", "check_conditions", "check_spec", "pbt_mutated"]


def check_spec(
    spec: SearchSpec, problems: Problems, *, given_trials: Any, builtin_trainable: bool
) -> SearchSpec:
    """Every cross-check; the spec (grid budget, objective directions resolved) or
    :class:`SpecError`."""
    spec = _resolve_directions(spec, problems, builtin_trainable=builtin_trainable)
    _check_names(spec, problems)
    spec = _check_grid_and_objectives(spec, given_trials, problems)
    _check_study(spec, problems)
    _check_enqueue(spec, problems)
    _check_pbt(spec, problems)
    _note_idle_pruner(spec, problems)
    if builtin_trainable:  # a user's own trainable has its own config and metrics
        _check_against_trainables(spec, problems)
        _note_rank_over_augmentations(spec, problems)
    problems.raise_if_any()
    return dataclasses.replace(spec, notes=tuple(problems.notes)) if problems.notes else spec


def _resolve_directions(
    spec: SearchSpec, problems: Problems, *, builtin_trainable: bool
) -> SearchSpec:
    """An objective written without a direction takes its metric's own (a probe declares
    it: lower uniformity is better); a user's trainable's metrics are maximised."""
    objectives = list(spec.study.objectives)
    many = len(objectives) > 1
    for i, o in enumerate(objectives):
        if o.direction is not None:
            continue
        direction: str | None = "maximize"
        if builtin_trainable:
            try:
                direction = shipped().direction(o.metric)
            except KeyError:  # an unknown metric is reported with the probes' list
                direction = "maximize"
            if direction is None:
                path = ("study", "objective", *((i,) if many else ()), "metric")
                problems.add(path, f"'{o.metric}' is not a score: give its direction")
                direction = "maximize"
        objectives[i] = dataclasses.replace(o, direction=direction)
    study = dataclasses.replace(spec.study, objectives=tuple(objectives))
    return dataclasses.replace(spec, study=study)


def _check_names(spec: SearchSpec, problems: Problems) -> None:
    """A parameter may not be the budget's own setting nor the section of another."""
    names = spec.param_names
    for name in names:
        if name == "train/epochs":
            problems.add(
                ("params", name),
                "the trial length is the budget's: set budget/epochs (a sampled value "
                "would be overwritten)",
            )
        for other in names:
            if other.startswith(name + "/"):
                problems.add(
                    ("params", other),
                    f"inside params/{name}: one parameter cannot be a value and hold another",
                )


def check_conditions(params: tuple[Param, ...], problems: Problems) -> None:
    declared: dict[str, Param] = {}
    names = {p.name for p in params}
    for param in params:
        for other, values in param.when:
            path = ("params", param.name, "when", other)
            if other not in names:
                problems.add(path, f"condition on '{other}', which is not a parameter")
            elif other == param.name:
                problems.add(path, "a parameter cannot be conditioned on itself")
            elif other not in declared:
                problems.add(path, f"condition on '{other}', declared after this one")
            elif declared[other].possible_values() is None:
                problems.add(path, f"'{other}' is continuous; conditions need choices")
            else:
                allowed = declared[other].possible_values()
                for v in values:
                    if not declared[other].contains(v):
                        problems.add(
                            path,
                            f"{v!r} is not a value of '{other}' ({', '.join(map(repr, allowed))})",
                        )
        declared[param.name] = param


def _check_grid_and_objectives(
    spec: SearchSpec, given_trials: Any, problems: Problems
) -> SearchSpec:
    """Grid sweeps run every point (x repeats); several objectives need a sampler for them."""
    study = spec.study
    metrics = [o.metric for o in study.objectives]
    for i, metric in enumerate(metrics):
        if metric in metrics[:i]:
            problems.add(
                ("study", "objective", i, "metric"),
                f"'{metric}' is already objective {metrics.index(metric)}: "
                "each objective is another metric",
            )
    if len(study.objectives) > 1 and study.sampler.name not in MULTI_OBJECTIVE_SAMPLERS:
        problems.add(
            ("study", "sampler"),
            f"'{study.sampler.name}' handles one objective; with several use one of "
            f"{', '.join(sorted(MULTI_OBJECTIVE_SAMPLERS))}",
        )
    if study.sampler.name != "grid":
        return spec
    repeats = study.sampler.options.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        problems.add(
            ("study", "sampler", "repeats"), f"expected an integer >= 1, got {shown(repeats)}"
        )
        return spec
    if repeats > 1000:
        problems.add(("study", "sampler", "repeats"), f"expected at most 1,000, got {repeats:,}")
        return spec
    for p in spec.params:
        if p.is_range:
            problems.add(
                ("params", p.name), "the grid sampler needs listed values (type: grid), not a range"
            )
        if p.when:
            problems.add(
                ("params", p.name, "when"), "conditions are not supported with the grid sampler"
            )
    size = grid_size(spec)
    if given_trials is not None and given_trials > size:
        problems.add(
            ("budget", "trials"),
            f"the grid has {size} points (values x repeats); trials must be at most {size}",
        )
    # a full pass by default; fewer trials (e.g. a smoke run) cover part of the grid
    trials = size if given_trials is None or given_trials > size else given_trials
    return dataclasses.replace(spec, budget=dataclasses.replace(spec.budget, trials=trials))


def _check_study(spec: SearchSpec, problems: Problems) -> None:
    """Build the sampler and pruner once, so that a bad name or option fails here."""
    sampler, pruner = spec.study.sampler, spec.study.pruner
    typed = True
    for kind, registry, named in (("sampler", SAMPLERS, sampler), ("pruner", PRUNERS, pruner)):
        if named.name in registry:
            types = registry.annotations(named.name)
            for key, value in named.options.items():
                if key in types and (problem := check_value(value, types[key])):
                    problems.add(("study", kind, key), problem)
                    typed = False
    if not typed:  # Optuna would fail on the value, with a message about NumPy dtypes
        return
    try:
        build_sampler(sampler.name, sampler.options, search_space=grid_search_space(spec))
    except (UnknownNameError, ValueError) as err:
        problems.add(("study", "sampler"), str(err))
    try:
        build_pruner(pruner.name, pruner.options)
    except (UnknownNameError, ValueError) as err:
        problems.add(("study", "pruner"), str(err))
    if spec.study.storage and (problem := storage_problem(spec.study.storage)):
        problems.add(("study", "storage"), f"cannot open {spec.study.storage}: {problem}")


def _note_idle_pruner(spec: SearchSpec, problems: Problems) -> None:
    """A median or percentile pruner whose warm-up outlasts the epochs, or whose
    start-up outnumbers the trials, stops no trial: early stopping that is not there."""
    pruner, budget = spec.study.pruner, spec.budget
    if spec.study.scheduler is not None or pruner.name not in ("median", "percentile"):
        return
    if len(spec.study.objectives) > 1:
        return  # (Optuna prunes single-objective studies only)
    warmup, startup = pruner.options.get("n_warmup_steps"), pruner.options.get("n_startup_trials")
    if isinstance(warmup, int) and warmup >= budget.epochs:
        problems.note(
            ("study", "pruner", "n_warmup_steps"),
            f"the {pruner.name} pruner decides from epoch {warmup} on, and a trial trains "
            f"{budget.epochs} (budget/epochs): it stops no trial early",
        )
    elif isinstance(startup, int) and startup >= budget.trials:
        problems.note(
            ("study", "pruner", "n_startup_trials"),
            f"the {pruner.name} pruner decides once {startup} trials have finished, and "
            f"the study runs {budget.trials} (budget/trials): it stops no trial",
        )


def _note_rank_over_augmentations(spec: SearchSpec, problems: Problems) -> None:
    """RankMe as the objective of a search over augmentations: it rewards what they
    would remove (measured on shapes, README "Measured")."""
    searched = [p.name for p in spec.params if p.sampled and p.name.startswith("aug/")]
    many = len(spec.study.objectives) > 1
    for i, objective in enumerate(spec.study.objectives):
        if objective.metric == "rankme" and searched:
            problems.note(
                ("study", "objective", *((i,) if many else ()), "metric"),
                f"RankMe counts the dimensions the features use, not what they encode; with "
                f"augmentations searched ({', '.join(searched)}) a weaker one keeps a nuisance "
                "(colour) that raises it: on shapes it ranked the weakest colour jitter first, "
                "at a kNN of chance; judge augmentations by a labelled probe (alpha_req agreed "
                "better there)",
            )


def _check_enqueue(spec: SearchSpec, problems: Problems) -> None:
    """Enqueued configurations name existing parameters with values they can take."""
    by_name = {p.name: p for p in spec.params}
    for i, point in enumerate(spec.study.enqueue):
        for name, value in point.items():
            path = ("study", "enqueue", i, name)
            param = by_name.get(name)
            if param is None or not param.sampled:
                problems.add(path, "not a sampled parameter of this space")
            elif not param.contains(value):
                problems.add(path, f"{value!r} is outside {name}'s distribution")


def pbt_mutated(spec: SearchSpec) -> tuple[str, ...]:
    """The parameters PBT mutates: ``scheduler.mutate``, by default every sampled ``aug/`` one."""
    assert spec.study.scheduler is not None
    names = spec.study.scheduler.options.get("mutate")
    if names is None:
        names = [p.name for p in spec.sampled if p.name.startswith("aug/") and p.kind != "grid"]
    return tuple(names)


def _check_pbt(spec: SearchSpec, problems: Problems) -> None:
    scheduler = spec.study.scheduler
    if scheduler is None or scheduler.name != "pbt":
        return
    options, path = scheduler.options, ("study", "scheduler")
    interval = options.get("perturbation_interval", 1)
    if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
        problems.add(
            (*path, "perturbation_interval"),
            f"expected a whole number of epochs >= 1, got {shown(interval)}",
        )
    elif interval >= spec.budget.epochs:
        problems.add(
            (*path, "perturbation_interval"),
            f"{interval} >= budget/epochs ({spec.budget.epochs}): PBT would never perturb",
        )
    fraction = options.get("quantile_fraction", 0.25)
    if not is_number(fraction) or not 0 < fraction <= 0.5:
        problems.add(
            (*path, "quantile_fraction"), f"expected a number in (0, 0.5], got {shown(fraction)}"
        )
    mutate = options.get("mutate")
    if mutate is not None and (
        not isinstance(mutate, list) or not all(isinstance(n, str) for n in mutate)
    ):
        problems.add((*path, "mutate"), "expected a list of names")
        return
    sampled = {p.name: p for p in spec.sampled if p.kind != "grid"}
    for name in mutate or ():
        if name not in sampled:
            problems.add(
                (*path, "mutate", name),
                f"not a sampled parameter of this space; sampled: {', '.join(sampled) or 'none'}",
            )
    if not pbt_mutated(spec):
        problems.add(
            (*path, "mutate"),
            "PBT needs parameters to mutate: list them, or sample some aug/ parameters",
        )


def _check_against_trainables(spec: SearchSpec, problems: Problems) -> None:
    """Compile the space at each param's ends and choices; parse each trial config as a
    trial would; then what those configs leave unused or unreported."""
    names = set(spec.param_names)
    catalogue = shipped()  # the registries' facts, without importing torch
    configs, seen = [], set()
    for config in representative_configs(spec):
        cfg, found = config_problems(config, catalogue=catalogue)
        if cfg is not None and not found:
            configs.append(cfg)
        add_trial_problems(spec, problems, found, seen)
    if problems.items:
        return
    _check_unused_options(configs, names, problems)
    _check_unused_ratio_end(configs, names, catalogue, problems)
    _note_masks_per_ratio(spec, configs, catalogue, problems)
    _note_nothing_masked(spec, configs, catalogue, problems)
    many = len(spec.study.objectives) > 1
    for cfg in configs:
        metrics = set(LOOP_METRICS)
        weights = catalogue.entry("objective", cfg.loss.name).meta["weights"]
        metrics.update(f"loss_{t}" for t in weights)
        for probe in cfg.probe.names:
            metrics.update(catalogue.entry("probe", probe).meta["metrics"])
        for i, objective in enumerate(spec.study.objectives):
            if objective.metric not in metrics:
                path = ("study", "objective", *((i,) if many else ()), "metric")
                reported = ", ".join(sorted(metrics))
                problems.add(path, f"no probe reports '{objective.metric}'; reported: {reported}")
                return


def add_trial_problems(
    spec: SearchSpec, problems: Problems, found: Iterable[ConfigError], seen: set
) -> None:
    """Record a trial config's problems once each (``seen``: those recorded): at the
    parameter that sets the key when one does, else at the key."""
    names = spec.param_names
    for err in found:
        if (err.path, err.message) in seen:
            continue
        seen.add((err.path, err.message))
        param = next((n for n in names if err.path == n or err.path.startswith(n + "/")), None)
        if param is not None:
            problems.add(("params", param), err.message)
        else:
            problems.add_key(err.path, err.message)


def _check_unused_options(configs: list, names: set[str], problems: Problems) -> None:
    """Options for a masking strategy, objective or probe that no trial uses (a typo of
    the chosen one, or a choice left out) would be ignored without a word."""
    sections = (
        ("mask", lambda c: {c.mask.strategy}, lambda c: c.mask.options, "strategy"),
        ("loss", lambda c: {c.loss.name}, lambda c: c.loss.options, "objective"),
        ("probe", lambda c: set(c.probe.names), lambda c: c.probe.options, "probe"),
    )
    for section, chosen_of, options_of, what in sections:
        chosen = set().union(*(chosen_of(c) for c in configs))
        for name in sorted(set().union(*(set(options_of(c)) for c in configs)) - chosen):
            key = f"{section}/{name}"
            param = next((n for n in sorted(names) if n.startswith(key + "/")), None)
            path = ("params", param) if param else (section, name)
            problems.add(
                path,
                f"options for {what} '{name}', which no trial uses "
                f"(chosen or searched: {', '.join(sorted(chosen))})",
            )


def _check_unused_ratio_end(
    configs: list, names: set[str], catalogue: Any, problems: Problems
) -> None:
    """``mask.ratio_end`` set (or searched) while every trial masks at a constant ratio:
    the constant schedule never reads it, so it would be ignored without a word."""
    masking = [c for c in configs if catalogue.entry("objective", c.loss.name).meta["masks"]]
    if not masking or any(c.mask.schedule != "constant" for c in masking):
        return
    if all(c.mask.ratio_end is None for c in masking):
        return
    key = "mask/ratio_end"
    problems.add(
        ("params", key) if key in names else ("mask", "ratio_end"),
        "the masking schedule is 'constant' in every trial, and a constant schedule never "
        "reads ratio_end; set mask.schedule (linear, cosine, step) or drop ratio_end",
    )


def _note_masks_per_ratio(
    spec: SearchSpec, configs: list, catalogue: Any, problems: Problems
) -> None:
    """A masking ratio finer than the encoder's token grid: a ratio masks
    ``round(tokens x ratio)`` tokens, so on a small grid many ratios make one mask,
    and each is another configuration to the sampler, to repeats and to confirm."""
    ratio = next((p for p in spec.sampled if p.name == "mask/ratio"), None)
    masking = [c for c in configs if catalogue.entry("objective", c.loss.name).meta["masks"]]
    if ratio is None or not masking or any(c.mask.schedule != "constant" for c in masking):
        return  # a schedule moves the ratio every step: the fine values differ
    tokens = {token_count(c, catalogue=catalogue) for c in masking}
    n = tokens.pop() if len(tokens) == 1 else None
    if n is None:
        return
    head = f"a ratio masks round({n} x ratio) of the encoder's {n} patch tokens, so "
    if not isinstance(ratio, FloatParam):  # a list: each value runs (grid) or is a choice
        by_mask: dict[int, list[Any]] = {}
        for value in (v for v in ratio.possible_values() or () if is_number(v)):
            by_mask.setdefault(num_masked(n, value), []).append(value)
        same = [f"{', '.join(map(str, vs))} mask {k}" for k, vs in by_mask.items() if len(vs) > 1]
        if same:
            problems.note(
                ("params", ratio.name),
                head + "; ".join(same) + " tokens: one mask, trained as different configurations",
            )
        return
    first, last = num_masked(n, ratio.low), num_masked(n, ratio.high)
    masks = last - first + 1
    values = math.inf if ratio.step is None else round((ratio.high - ratio.low) / ratio.step) + 1
    if values <= masks or masks >= spec.budget.trials:
        return
    problems.note(
        ("params", ratio.name),
        head + f"{ratio.low:g} .. {ratio.high:g} makes {masks} different masks ({first} to "
        f"{last} tokens) for {spec.budget.trials} trials: two ratios that make one mask are two "
        "configurations to the sampler, to budget.repeated_config and to confirm; "
        f"{{low: {first / n:g}, high: {last / n:g}, step: {1 / n:g}}} names each mask once",
    )


def _note_nothing_masked(
    spec: SearchSpec, configs: list, catalogue: Any, problems: Problems
) -> None:
    """A ratio that masks no token under an objective that reconstructs masked tokens:
    its reconstruction term is 0 (no gradient); a baseline, if meant."""
    for cfg in configs:
        if not catalogue.entry("objective", cfg.loss.name).meta["masks"]:
            continue
        n = token_count(cfg, catalogue=catalogue)
        ratios = [cfg.mask.ratio]  # a schedule moves it monotonically to its end
        if cfg.mask.schedule != "constant" and cfg.mask.ratio_end is not None:
            ratios.append(cfg.mask.ratio_end)
        if n is None or any(num_masked(n, r) > 0 for r in ratios):
            continue
        key = "mask/ratio"
        path = ("params", key) if key in spec.param_names else ("mask", "ratio")
        problems.note(
            path,
            f"a ratio of {cfg.mask.ratio:g} masks round({n} x {cfg.mask.ratio:g}) = 0 of the "
            f"encoder's {n} patch tokens: '{cfg.loss.name}' reconstructs nothing, so its "
            "reconstruction term is 0 and sends the encoder no gradient (a baseline, if that "
            "is meant)",
        )
        return
