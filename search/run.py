"""Build and run the Ray Tune experiment of a search spec.

``run_search(spec, out=RUN_DIR)`` writes ``RUN_DIR/spec.yaml``, creates the
Optuna study in ``RUN_DIR/study.db``, runs ``tune.Tuner`` with the Optuna
sampler bridge and pruning scheduler under ``RUN_DIR/tune``, then writes the
Parquet tables and prints a summary. ``resume_search(RUN_DIR)`` continues an
interrupted run to its budget (each resume a new Tune experiment ``tune.N``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import random
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from search.storage import resolve_storage_url
from spaces import SearchSpec, SpecError, define_by_run, trial_config
from spaces.compile import grid_search_space
from spaces.study import build_pruner, build_sampler

__all__ = [
    "RunError",
    "RunInterrupted",
    "RunResult",
    "load_trainable",
    "resume_search",
    "run_info",
    "run_search",
]

TUNE_DIR = "tune"
SPEC_FILE = "spec.yaml"
RUN_FILE = "run.json"
BASELINE_FILE = "baseline.json"


class RunError(RuntimeError):
    """A run that cannot start or in which no trial could run."""


class RunInterrupted(RunError):
    """The run stopped (Ctrl-C) before its budget was spent; ``resume`` continues it."""


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


def load_trainable(target: str) -> Any:
    """``module:function`` -> the function; the module is shipped to Ray workers by value.

    Raises:
        ValueError: not ``module:function``, or it cannot be imported.
    """
    import importlib

    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--trainable {target!r}: expected module:function")
    sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules next to you import
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"--trainable {target!r}: cannot import {module_name} ({err})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ValueError(f"--trainable {target!r}: {module_name} has no function {attr}")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # workers need not find the module
    return fn


def _trainable_ref(trainable: Any) -> str | None:
    """``module:function`` of an importable trainable (so ``resume`` can find it again)."""
    module, name = getattr(trainable, "__module__", None), getattr(trainable, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        return None
    return f"{module}:{name}"


def _bridge(spec: SearchSpec, storage: str, experiment: str) -> Any:
    from search.sampler import StudyBridge

    study_cfg = spec.study
    return StudyBridge(
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
        experiment=experiment,
    )


def _write_spec(run_dir: Path, spec: SearchSpec) -> None:
    (run_dir / SPEC_FILE).write_text(
        f"# resolved from {spec.source}\n" + yaml.safe_dump(spec.to_dict(), sort_keys=False),
        encoding="utf-8",
    )


def _builtin_dataset(spec: SearchSpec) -> tuple[Any, Any]:
    """The base trial config and its decoded dataset (a bad path fails here, early)."""
    from trainables.config import ConfigError, TrialConfig
    from trainables.data import load_dataset

    try:
        base = TrialConfig.from_dict(trial_config(spec, {}))
        return base, load_dataset(base.data)
    except ConfigError as err:
        raise SpecError([(spec.source, 0, err.path, err.message)]) from None


def run_search(
    spec: SearchSpec,
    *,
    out: str | Path,
    trainable: Any = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: bool = True,
    storage_path: str | None = None,
    reuse_actors: bool = True,
    share_dataset: bool = True,
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
        storage_path: where the Tune experiment and its checkpoints go, for a
            multi-node cluster: a shared file system or any URI Ray accepts
            (``s3://bucket/runs``); the run's are under ``storage_path/<out's name>``.
            Default: inside ``out``.
        reuse_actors: let a finished trial's Ray actor run the next trial (default;
            a fresh process costs seconds of imports). Off only to measure that.
        share_dataset: put the built-in trainable's dataset in Ray's object store
            once (default); off, every trial decodes it again (to measure that).

    Returns:
        A :class:`RunResult`; the study, Tune results and Parquet tables are in ``out``.

    Raises:
        RunInterrupted: the run was stopped (Ctrl-C) before its budget was spent;
            :func:`resume_search` continues it.

    Example:
        >>> from spaces import load_spec  # doctest: +SKIP
        >>> result = run_search(load_spec("spaces/default.yaml"), out="runs/x")  # doctest: +SKIP
    """
    run_dir = Path(out).resolve()
    if (run_dir / SPEC_FILE).exists() or (run_dir / "study.db").exists():
        raise RunError(f"{run_dir} already holds a run; choose another --out")
    base = dataset = None
    if trainable is None:  # decode the data first: a bad path fails before anything is written
        base, dataset = _builtin_dataset(spec)
    _init_ray(address, num_cpus=num_cpus)
    check_resources(spec)  # before anything is written: Tune would wait forever
    run_dir.mkdir(parents=True, exist_ok=True)
    storage = resolve_storage_url(spec.study.storage, run_dir)
    resolved = dataclasses.replace(spec, study=dataclasses.replace(spec.study, storage=storage))
    _write_spec(run_dir, resolved)
    (run_dir / RUN_FILE).write_text(
        json.dumps(
            {
                "builtin_trainable": trainable is None,
                "trainable": None if trainable is None else _trainable_ref(trainable),
                "experiments": [TUNE_DIR],
                "storage_path": (
                    f"{storage_path.rstrip('/')}/{run_dir.name}" if storage_path else None
                ),
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    bridge = _bridge(resolved, storage, TUNE_DIR)
    for point in spec.study.enqueue:  # configurations to run first (e.g. the paper's defaults)
        bridge.study.enqueue_trial(dict(point), skip_if_exists=True)
    bridge.study  # noqa: B018 - create the study before any trial starts
    if trainable is None:
        from trainables.loop import random_init_metrics

        if verbose:
            print("measuring the random-init baseline of the encoder ...", flush=True)
        baseline = random_init_metrics(base, dataset)
        (run_dir / BASELINE_FILE).write_text(json.dumps(baseline, indent=2), encoding="utf-8")
    _fit(
        resolved,
        run_dir,
        bridge,
        trainable,
        dataset if share_dataset else None,
        trials=spec.budget.trials,
        verbose=verbose,
        reuse_actors=reuse_actors,
    )
    return _finish(run_dir, resolved, verbose=verbose)


def run_info(run_dir: str | Path) -> dict[str, Any]:
    """``RUN_DIR/run.json``: which trainable ran and the Tune experiments of each session."""
    try:
        return json.loads((Path(run_dir) / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # a run of an older version: the built-in trainable
        return {"builtin_trainable": True, "trainable": None, "experiments": [TUNE_DIR]}


def resume_search(
    out: str | Path,
    *,
    spec: SearchSpec | None = None,
    trainable: Any = None,
    address: str | None = None,
    num_cpus: int | None = None,
    verbose: bool = True,
) -> RunResult:
    """Continue an interrupted run to its budget.

    The study is the truth: finished trials keep their values; stale RUNNING
    trials are settled by :func:`search.recover.recover_study` (re-run from
    their last checkpoint, or from scratch); then as many new trials run as
    the budget still allows, in a new Tune experiment ``tune.N`` of the run
    directory, with the sampler continuing from the study's history.

    Args:
        out: the run directory of :func:`run_search`.
        spec: an edited space to continue with (budget, fixed values and study
            settings may change; a sampled parameter's distribution may not).
            Default: the run's ``spec.yaml``.
        trainable: the run's own trainable, when it was not the built-in one
            and cannot be imported by the name recorded in ``run.json``.
        address, num_cpus, verbose: as for :func:`run_search`.

    Raises:
        RunError: ``out`` holds no run, or its trainable cannot be found.
        SpecError: the edited space changes what the study has sampled (a readable diff).

    Example:
        >>> result = resume_search("runs/demo")  # doctest: +SKIP
    """
    from search.recover import finished_count, recover_study
    from spaces import load_spec
    from spaces.diff import incompatibilities

    run_dir = Path(out).resolve()
    spec_path = run_dir / SPEC_FILE
    if not spec_path.exists():
        raise RunError(f"{run_dir} holds no run ({SPEC_FILE} is missing)")
    info = run_info(run_dir)
    builtin = bool(info.get("builtin_trainable", True))
    old = load_spec(spec_path, builtin_trainable=builtin)
    if spec is not None:
        problems = incompatibilities(old, spec)
        if problems:
            head = f"cannot resume {run_dir}: the edit changes what its study has sampled"
            lines = [(str(spec.source), 0, "", head)]
            for problem in problems:
                key, _, message = problem.partition(": ")
                lines.append((str(spec.source), 0, key, message))
            raise SpecError(lines)
        spec = dataclasses.replace(
            spec, study=dataclasses.replace(spec.study, storage=old.study.storage)
        )
    else:
        spec = old
    if trainable is None and not builtin:
        ref = info.get("trainable")
        if not ref:
            raise RunError(
                f"{run_dir} ran a trainable that cannot be imported by name; "
                "pass it again (resume_search(..., trainable=...) or --trainable module:function)"
            )
        trainable = load_trainable(ref)
    dataset = None
    if trainable is None:
        _, dataset = _builtin_dataset(spec)
    experiments = list(info.get("experiments", [TUNE_DIR]))
    experiment = f"{TUNE_DIR}.{len(experiments)}"
    storage = spec.study.storage
    bridge = _bridge(spec, storage, experiment)
    metrics = [o.metric for o in spec.study.objectives]
    recovery = recover_study(
        bridge.study,
        run_dir=run_dir,
        metrics=metrics,
        epochs=spec.budget.epochs,
        pruning_study=bridge.pruning_study if bridge.multi_objective else None,
    )
    done = finished_count(bridge.study)
    remaining = max(0, spec.budget.trials - done)
    if spec is not old:
        previous = run_dir / f"spec.{len(experiments) - 1}.yaml"
        spec_path.replace(previous)
        _write_spec(run_dir, spec)
    if verbose:
        print(
            f"resuming {run_dir}: {done}/{spec.budget.trials} trials finished"
            f" ({len(recovery.completed)} completed and {len(recovery.pruned)} pruned while"
            f" the run stopped); {len(recovery.rerun)} interrupted trial(s) re-run"
            + "".join(
                f"\n  trial {a} -> trial {b} "
                + (f"from its checkpoint at epoch {s}" if s else "from scratch")
                for a, b, s in recovery.rerun
            )
            + f"; {remaining} trial(s) to go",
            flush=True,
        )
    if remaining:
        info["experiments"] = [*experiments, experiment]
        (run_dir / RUN_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        _init_ray(address, num_cpus=num_cpus)
        check_resources(spec)
        _fit(spec, run_dir, bridge, trainable, dataset, trials=remaining, verbose=verbose)
    return _finish(run_dir, spec, verbose=verbose)


def check_resources(spec: SearchSpec) -> None:
    """Refuse a trial size no node of the Ray cluster can ever hold (Tune would wait forever).

    Raises:
        RunError: naming what a trial asks for and what the largest nodes have.
    """
    import ray

    need = {"CPU": spec.budget.cpu, "GPU": spec.budget.gpu}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(node.get(k, 0.0) >= v for k, v in need.items() if v > 0) for node in nodes):
        return
    have = "; ".join(f"{node.get('CPU', 0):g} CPU, {node.get('GPU', 0):g} GPU" for node in nodes)
    raise RunError(
        f"no node of the Ray cluster can run a trial: each asks for {need['CPU']:g} CPU and "
        f"{need['GPU']:g} GPU (budget/resources), the nodes have: {have or 'none'}. "
        "Lower budget/resources or add a node that has them."
    )


def logger_callbacks(spec: SearchSpec, run_dir: Path) -> list[Any]:
    """Ray Tune's own logger callbacks named in ``study.loggers``.

    ``tensorboard`` writes event files into each trial's directory
    (``tensorboard --logdir RUN_DIR --host 127.0.0.1``); ``mlflow`` logs to
    ``tracking_uri`` (default: ``RUN_DIR/mlruns``), one MLflow run per trial in the
    experiment named after the study; ``wandb`` logs to ``project`` (default: the
    study's name).
    """
    out: list[Any] = []
    for name, options in spec.study.loggers.items():
        options = dict(options)
        if name == "tensorboard":
            from ray.tune.logger import TBXLoggerCallback

            out.append(TBXLoggerCallback())
        elif name == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback

            options.setdefault("tracking_uri", (run_dir / "mlruns").as_uri())
            options.setdefault("experiment_name", spec.study.name)
            out.append(MLflowLoggerCallback(**options))
        elif name == "wandb":
            from ray.air.integrations.wandb import WandbLoggerCallback

            options.setdefault("project", spec.study.name)
            out.append(WandbLoggerCallback(**options))
    return out


def _fit(
    spec: SearchSpec,
    run_dir: Path,
    bridge: Any,
    trainable: Any,
    dataset: Any,
    *,
    trials: int,
    verbose: bool,
    reuse_actors: bool = True,
) -> None:
    """One Tune experiment of ``trials`` trials, sampled and pruned through ``bridge``."""
    from ray import tune

    from analysis.results import experiments_root
    from search.progress import ProgressPrinter
    from search.pruning import ASHAScheduler, OptunaPruningScheduler, PBTScheduler
    from search.recover import finished_count, resumable
    from search.sampler import OptunaSearcher

    study_cfg = spec.study
    metrics = [o.metric for o in study_cfg.objectives]
    modes = [_mode(o.direction) for o in study_cfg.objectives]
    searcher = OptunaSearcher(bridge, define_by_run(spec), metrics=metrics, modes=modes)
    if study_cfg.scheduler is not None and study_cfg.scheduler.name == "pbt":
        scheduler = PBTScheduler(bridge, spec, metric=metrics[0], mode=modes[0])
        # without actor reuse on purpose (below): Tune's advice to turn it on is noise here
        warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
        if scheduler.seed is not None:  # PBT's explore draws from `random` and numpy
            random.seed(scheduler.seed)
            np.random.seed(scheduler.seed)
    elif study_cfg.scheduler is not None:  # Tune's ASHA instead of an Optuna pruner
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
    if trainable is None:
        from trainables.trainable import train_trial

        if dataset is not None:  # in the object store once, read by every trial
            trainable = tune.with_parameters(resumable(train_trial), dataset=dataset)
        else:  # each trial decodes its data itself
            trainable = resumable(train_trial)
    else:
        trainable = resumable(trainable)
    callbacks = []
    if verbose:
        callbacks.append(
            ProgressPrinter(
                bridge,
                metric=metrics[0],
                mode=modes[0],
                total=spec.budget.trials,
                done=finished_count(bridge.study),
                best=_best_so_far(bridge.study),
            )
        )
    callbacks += logger_callbacks(spec, run_dir)
    resources = {"cpu": spec.budget.cpu, "gpu": spec.budget.gpu}
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=trials,
            max_concurrent_trials=spec.budget.concurrency,
            # Under PBT, reused function-trainable actors lost rows of result.json
            # (Ray 2.60, tests/test_pbt.py): PBT trials get fresh actors.
            reuse_actors=reuse_actors and not isinstance(scheduler, PBTScheduler),
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            metric=metrics[0],
            mode=modes[0],
        ),
        run_config=tune.RunConfig(
            name=bridge.experiment,
            storage_path=experiments_root(run_dir),
            verbose=0,
            callbacks=callbacks,
            # PBT clones other trials' checkpoints: Tune deleting old ones under it
            # logged errors (Ray 2.60), so PBT runs keep them all
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=None if isinstance(scheduler, PBTScheduler) else 1
            ),
            # retried from the last checkpoint, on any node (a lost node, a CUDA OOM)
            failure_config=tune.FailureConfig(max_failures=spec.budget.max_failures),
        ),
    )
    tuner.fit()


def _best_so_far(study: optuna.Study) -> tuple[float, int] | None:
    """The primary objective's best completed value and trial (for a resumed run's progress)."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    best = pick(complete, key=lambda t: t.values[0])
    return best.values[0], best.number


def _finish(run_dir: Path, spec: SearchSpec, *, verbose: bool) -> RunResult:
    """Write the tables; raise :class:`RunInterrupted` if the run stopped before its end."""
    from analysis.report import write_report
    from analysis.tables import write_tables
    from search.recover import finished_count
    from search.storage import open_storage

    write_tables(run_dir)
    try:
        report = write_report(run_dir)
        if verbose:
            print(f"report: {report}", flush=True)
    except Exception as err:  # the run's results stand without the report
        print(
            f"sslsearch: the report could not be written ({type(err).__name__}: {err}); "
            f"the tables are in {run_dir}; retry with: sslsearch report {run_dir}",
            file=sys.stderr,
            flush=True,
        )
    study = optuna.load_study(study_name=spec.study.name, storage=open_storage(spec.study.storage))
    running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
    if running or finished_count(study) < spec.budget.trials:
        raise RunInterrupted(
            f"the run stopped with {finished_count(study)}/{spec.budget.trials} trials finished"
            f" and {running} running; continue it with: sslsearch resume {run_dir}"
        )
    return summarize(
        run_dir, storage=spec.study.storage, study_name=spec.study.name, verbose=verbose
    )


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
