"""Build and run the Ray Tune experiment of a search spec.

``run_search(spec, out=RUN_DIR)`` writes ``RUN_DIR/spec.yaml``, creates the
Optuna study in ``RUN_DIR/study.db``, runs ``tune.Tuner`` with the Optuna
sampler bridge and pruning scheduler under ``RUN_DIR/tune``, then writes the
Parquet tables and prints a summary.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from search.storage import resolve_storage_url
from spaces import SearchSpec, SpecError, define_by_run, trial_config
from spaces.compile import grid_search_space
from spaces.study import build_pruner, build_sampler

__all__ = ["RunError", "RunResult", "run_search"]

TUNE_DIR = "tune"
SPEC_FILE = "spec.yaml"
BASELINE_FILE = "baseline.json"


class RunError(RuntimeError):
    """A run that cannot start or in which no trial could run."""


@dataclass(frozen=True)
class RunResult:
    """What a finished run produced.

    Attributes:
        run_dir: the run directory.
        storage: the Optuna storage URL.
        study_name: the study's name in that storage.
        best_number: Optuna number of the best completed trial (None if none completed).
        best_value: its primary objective value.
        best_params: its sampled parameters.
        states: count of trials per Optuna state name.
    """

    run_dir: Path
    storage: str
    study_name: str
    best_number: int | None
    best_value: float | None
    best_params: dict[str, Any]
    states: dict[str, int]


def _init_ray(address: str | None, *, num_cpus: int | None) -> None:
    import ray

    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": "WARNING",
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus, **kwargs)


def _trial_name(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _mode(direction: str) -> str:
    return "max" if direction == "maximize" else "min"


def run_search(
    spec: SearchSpec,
    *,
    out: str | Path,
    trainable: Any = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: bool = True,
) -> RunResult:
    """Run the study declared by ``spec`` into the run directory ``out``.

    Args:
        spec: a validated search spec (:func:`spaces.load_spec`).
        out: the run directory; must not already hold a run.
        trainable: a Ray Tune function trainable; default
            :func:`trainables.trainable.train_trial` on the spec's dataset.
        address: an existing Ray cluster to attach to; a local Ray otherwise.
        num_cpus: CPUs of the local Ray (default: all).
        verbose: print progress and the final summary.

    Returns:
        A :class:`RunResult`; the study, Tune results and Parquet tables are in ``out``.

    Example:
        >>> from spaces import load_spec  # doctest: +SKIP
        >>> result = run_search(load_spec("spaces/default.yaml"), out="runs/x")  # doctest: +SKIP
    """
    from ray import tune

    from analysis.tables import write_tables
    from search.progress import ProgressPrinter
    from search.pruning import ASHAScheduler, OptunaPruningScheduler
    from search.sampler import OptunaSearcher, StudyBridge

    run_dir = Path(out).resolve()
    if (run_dir / SPEC_FILE).exists() or (run_dir / "study.db").exists():
        raise RunError(f"{run_dir} already holds a run; choose another --out")
    dataset = base = None
    if trainable is None:  # decode the data first: a bad path fails before anything is written
        from trainables.config import ConfigError, TrialConfig
        from trainables.data import load_dataset

        try:
            base = TrialConfig.from_dict(trial_config(spec, {}))
            dataset = load_dataset(base.data)
        except ConfigError as err:
            raise SpecError([(spec.source, 0, err.path, err.message)]) from None
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = resolve_storage_url(spec.study.storage, run_dir)
    resolved = dataclasses.replace(spec, study=dataclasses.replace(spec.study, storage=storage))
    (run_dir / SPEC_FILE).write_text(
        f"# resolved from {spec.source}\n" + yaml.safe_dump(resolved.to_dict(), sort_keys=False),
        encoding="utf-8",
    )
    study_cfg = spec.study
    bridge = StudyBridge(
        storage=storage,
        study_name=study_cfg.name,
        sampler_factory=functools.partial(
            build_sampler,
            study_cfg.sampler.name,
            dict(study_cfg.sampler.options),
            search_space=grid_search_space(spec),
        ),
        pruner_factory=functools.partial(
            build_pruner, study_cfg.pruner.name, dict(study_cfg.pruner.options)
        ),
        directions=[o.direction for o in study_cfg.objectives],
    )
    for point in study_cfg.enqueue:  # configurations to run first (e.g. the paper's defaults)
        bridge.study.enqueue_trial(dict(point), skip_if_exists=True)
    bridge.study  # noqa: B018 - create the study before any trial starts
    metrics = [o.metric for o in study_cfg.objectives]
    modes = [_mode(o.direction) for o in study_cfg.objectives]
    searcher = OptunaSearcher(bridge, define_by_run(spec), metrics=metrics, modes=modes)
    if study_cfg.scheduler is not None:  # Tune's ASHA instead of an Optuna pruner
        scheduler = ASHAScheduler(
            bridge,
            metric=metrics[0],
            mode=modes[0],
            max_t=spec.budget.epochs,
            **dict(study_cfg.scheduler.options),
        )
    else:
        scheduler = OptunaPruningScheduler(bridge, metric=metrics[0])

    # A missing metric must fail one trial (searcher), not abort the whole run.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    # Our own progress lines replace Tune's tables; keep the console readable.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    _init_ray(address, num_cpus=num_cpus)
    if trainable is None:
        from trainables.loop import random_init_metrics
        from trainables.trainable import train_trial

        trainable = tune.with_parameters(train_trial, dataset=dataset)
        if verbose:
            print("measuring the random-init baseline of the encoder ...", flush=True)
        baseline = random_init_metrics(base, dataset)
        (run_dir / BASELINE_FILE).write_text(json.dumps(baseline, indent=2), encoding="utf-8")
    resources = {"cpu": spec.budget.cpu, "gpu": spec.budget.gpu}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=spec.budget.trials,
            max_concurrent_trials=spec.budget.concurrency,
            reuse_actors=True,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            metric=metrics[0],
            mode=modes[0],
        ),
        run_config=tune.RunConfig(
            name=TUNE_DIR,
            storage_path=str(run_dir),
            verbose=0,
            callbacks=[
                ProgressPrinter(bridge, metric=metrics[0], mode=modes[0], total=spec.budget.trials)
            ]
            if verbose
            else [],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            failure_config=tune.FailureConfig(max_failures=0),
        ),
    )
    tuner.fit()
    write_tables(run_dir)
    return summarize(run_dir, storage=storage, study_name=study_cfg.name, verbose=verbose)


def summarize(run_dir: Path, *, storage: str, study_name: str, verbose: bool) -> RunResult:
    """Read the finished study back and (optionally) print its summary."""
    import optuna

    from analysis.summary import format_summary
    from search.storage import open_storage

    study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    best = None
    if complete and len(study.directions) == 1:
        best = study.best_trial
    elif complete:
        best = study.best_trials[0]
    if verbose:
        print(format_summary(run_dir), flush=True)
    if not complete:
        raise RunError(f"no trial completed; see {run_dir / 'trials.parquet'} for the reasons")
    return RunResult(
        run_dir=run_dir,
        storage=storage,
        study_name=study_name,
        best_number=best.number,
        best_value=best.values[0],
        best_params=dict(best.params),
        states=states,
    )
