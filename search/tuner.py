"""A search spec -> a Ray Tune ``Tuner``: scheduler and logger registries, resources, failures.

Schedulers (``study.scheduler``; the Optuna pruning bridge when none is named)
and logger callbacks (``study.loggers``) are registries like every other
extension point: a builder per name. Their options are declared, without Ray,
in :mod:`spaces.study`, which is what a space is checked against.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import signal
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from analysis.rundir import RunDir
from search.errors import RunError
from search.sampler import OptunaSearcher, StudyBridge
from spaces import SearchSpec, define_by_run
from spaces.compile import grid_search_space
from spaces.study import build_pruner, build_sampler
from trainables._registry import Registry
from trainables.errors import InputError

__all__ = [
    "LOGGER_CALLBACKS",
    "SCHEDULERS",
    "build_bridge",
    "check_address",
    "check_resources",
    "fit",
    "init_ray",
    "logger_callbacks",
    "register_logger",
    "register_scheduler",
    "run_config",
    "run_experiment",
    "session_seed",
    "stop_as_ctrl_c",
]

#: ``name -> (bridge, spec, metric, mode) -> TrialScheduler``; ``optuna`` is the pruning bridge.
SCHEDULERS: Registry[Callable[..., Any]] = Registry("Tune scheduler")
register_scheduler = SCHEDULERS.register
#: ``name -> (spec, run_dir, options) -> tune.Callback``.
LOGGER_CALLBACKS: Registry[Callable[..., Any]] = Registry("logger")
register_logger = LOGGER_CALLBACKS.register


def init_ray(address: str | None, *, num_cpus: int | None) -> None:
    """Start a new local Ray (dashboard off) or attach to ``address`` (``auto``, ``ray://...``);
    from then on SIGTERM stops the process as Ctrl-C does (:func:`stop_as_ctrl_c`)."""
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
        check_address(address)  # Ray itself retries an address nothing answers for minutes
        ray.init(address=address, **kwargs)
    else:  # "local": never attach to a cluster a stale /tmp/ray record points at
        ray.init(address="local", num_cpus=num_cpus, **kwargs)
    if threading.current_thread() is threading.main_thread():
        # ray.init makes SIGTERM exit at once, with a C++ stack on stderr
        signal.signal(signal.SIGTERM, stop_as_ctrl_c)


def stop_as_ctrl_c(signum: int, frame: Any) -> None:
    """SIGTERM (a scheduler preempting the job, ``kill``, ``timeout``) stops a run or
    confirm as Ctrl-C does: Tune stops its trials, the tables are written and the run
    says how to resume it; outside Tune, as a ``KeyboardInterrupt``."""
    signal.raise_signal(signal.SIGINT)


def check_address(address: str, *, timeout: float = 10.0) -> None:
    """Refuse a cluster address (``host:port`` or ``ray://host:port``) where nothing
    answers; ``auto`` and an address without a port are left to Ray.

    Raises:
        InputError: naming the address and why the connection failed.

    Example:
        >>> check_address("auto")  # Ray finds the cluster this machine runs
        >>> check_address("127.0.0.1:1")  # nothing listens on port 1
        Traceback (most recent call last):
        ...
        trainables.errors.InputError: --address 127.0.0.1:1: no Ray cluster answers there (...
    """
    import socket

    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise InputError(
            f"--address {address}: no Ray cluster answers there ({err.strerror or err}); "
            "start one (ray start --head) or give the address `ray status` shows"
        ) from None


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


def session_seed(seed: int | None, session: int) -> int | None:
    """The sampler's seed in session ``session`` of a run (0: the run, N: its N-th resume).

    A resume that rebuilt the sampler with the spec's seed would replay its random
    draws and repeat finished configurations; each session draws its own stream,
    derived from the spec's seed, so a resumed run is as reproducible as the run.

    Example:
        >>> session_seed(0, 0), session_seed(None, 2), session_seed(0, 1) != session_seed(0, 2)
        (0, None, True)
    """
    if seed is None or session == 0:
        return seed
    return int(np.random.SeedSequence([seed, session]).generate_state(1)[0])


def build_bridge(
    spec: SearchSpec, storage: str, experiment: str, *, session: int = 0
) -> StudyBridge:
    """The study bridge of ``spec`` for one session's Tune experiment."""
    study_cfg = spec.study
    options = dict(study_cfg.sampler.options)
    if "seed" in options:
        options["seed"] = session_seed(options["seed"], session)
    return StudyBridge(
        storage=storage,
        study_name=study_cfg.name,
        sampler_factory=functools.partial(
            build_sampler, study_cfg.sampler.name, options, search_space=grid_search_space(spec)
        ),
        pruner_factory=functools.partial(
            build_pruner, study_cfg.pruner.name, dict(study_cfg.pruner.options)
        ),
        directions=[o.direction for o in study_cfg.objectives],
        experiment=experiment,
    )


def _mode(direction: str) -> str:
    return "max" if direction == "maximize" else "min"


@register_scheduler("optuna")
def _optuna_pruning(bridge: StudyBridge, spec: SearchSpec, metric: str, mode: str) -> Any:
    from search.pruning import OptunaPruningScheduler

    return OptunaPruningScheduler(bridge, metric=metric, max_t=spec.budget.epochs)


@register_scheduler("asha")
def _asha(bridge: StudyBridge, spec: SearchSpec, metric: str, mode: str) -> Any:
    from search.pruning import ASHAScheduler

    options = dict(spec.study.scheduler.options) if spec.study.scheduler else {}
    return ASHAScheduler(bridge, metric=metric, mode=mode, max_t=spec.budget.epochs, **options)


@register_scheduler("pbt")
def _pbt(bridge: StudyBridge, spec: SearchSpec, metric: str, mode: str) -> Any:
    from search.pruning import PBTScheduler

    scheduler = PBTScheduler(bridge, spec, metric=metric, mode=mode)
    # without actor reuse on purpose (fit): Tune's advice to turn it on is noise here
    warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
    if scheduler.seed is not None:  # PBT's explore draws from `random` and numpy
        random.seed(scheduler.seed)
        np.random.seed(scheduler.seed)
    return scheduler


@register_logger("tensorboard")
def _tensorboard(spec: SearchSpec, run_dir: Path, options: dict[str, Any]) -> Any:
    """Event files in each trial's directory (``tensorboard --logdir RUN_DIR --host 127.0.0.1``)."""
    from ray.tune.logger import TBXLoggerCallback

    return TBXLoggerCallback()


@register_logger("csv")
def _csv(spec: SearchSpec, run_dir: Path, options: dict[str, Any]) -> Any:
    """``progress.csv`` in each trial's directory (Ray Tune's own CSV logger)."""
    from ray.tune.logger import CSVLoggerCallback

    return CSVLoggerCallback()


@register_logger("mlflow")
def _mlflow(spec: SearchSpec, run_dir: Path, options: dict[str, Any]) -> Any:
    """One MLflow run per trial in the study's experiment (default: ``RUN_DIR/mlruns``)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    options.setdefault("tracking_uri", (run_dir / "mlruns").as_uri())
    options.setdefault("experiment_name", spec.study.name)
    return MLflowLoggerCallback(**options)


@register_logger("wandb")
def _wandb(spec: SearchSpec, run_dir: Path, options: dict[str, Any]) -> Any:
    """Logs to ``project`` (default: the study's name)."""
    from ray.air.integrations.wandb import WandbLoggerCallback

    options.setdefault("project", spec.study.name)
    return WandbLoggerCallback(**options)


def logger_callbacks(spec: SearchSpec, run_dir: Path) -> list[Any]:
    """Ray Tune's own logger callbacks named in ``study.loggers``."""
    return [
        LOGGER_CALLBACKS[name](spec, run_dir, dict(options))
        for name, options in spec.study.loggers.items()
    ]


def run_config(
    run: RunDir, name: str, callbacks: list[Any], *, max_failures: int, keep: int | None = 1
) -> Any:
    """Tune's ``RunConfig`` of every experiment of a run (search, noise floor, confirm):
    in the run directory, quiet, ``keep`` checkpoints per trial, a failed trial
    retried ``max_failures`` times from its last checkpoint, on any node (a lost
    node, a CUDA OOM). Besides ``callbacks``, the one logger every experiment keeps:
    each trial's ``result.json``, which the tables, the salvage of a killed run and
    confirm read (Tune's automatic loggers are off: :func:`run_experiment`)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    return tune.RunConfig(
        name=name,
        storage_path=run.experiments_root(),
        verbose=0,
        callbacks=[*callbacks, JsonLoggerCallback()],
        checkpoint_config=tune.CheckpointConfig(num_to_keep=keep),
        failure_config=tune.FailureConfig(max_failures=max_failures),
    )


#: Set for the length of a Tune experiment unless the user set them.
_TUNE_ENV = {
    # Tune adds CSV and TensorBoard loggers to every experiment, written by the
    # driver on every result, and nothing here reads them; ``study.loggers``
    # switches them back on, and result.json is kept (run_config).
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # Our own progress lines replace Tune's tables; keep the console readable.
    "RAY_AIR_NEW_OUTPUT": "0",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


#: A missing metric must fail one trial (the searcher's check), not abort the whole run.
_STRICT_METRICS = "TUNE_DISABLE_STRICT_METRIC_CHECKING"


def run_experiment(tuner: Any) -> Any:
    """``tuner.fit()`` in sslsearch's Tune environment, restored afterwards."""
    saved = {name: os.environ.get(name) for name in (*_TUNE_ENV, _STRICT_METRICS)}
    for name, value in _TUNE_ENV.items():
        os.environ.setdefault(name, value)
    os.environ[_STRICT_METRICS] = "1"
    try:
        return tuner.fit()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class _NoTuneRestoreHint(logging.Filter):
    """Drop Tune's "Resume experiment with: Tuner.restore(...)": a run resumes with
    ``sslsearch resume RUN_DIR`` (what RunInterrupted says), never with Tune's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Tuner.restore(" not in record.getMessage()


_TUNE_LOG = logging.getLogger("ray.tune.tune")
if not any(isinstance(f, _NoTuneRestoreHint) for f in _TUNE_LOG.filters):
    _TUNE_LOG.addFilter(_NoTuneRestoreHint())


def _trial_name(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _trainable(trainable: Any, dataset: Any) -> Any:
    """The Tune trainable: resumable, and the built-in one with its dataset shared once."""
    from ray import tune

    from search.recover import resumable

    if trainable is not None:
        return resumable(trainable)
    from trainables.trainable import train_trial

    if dataset is not None:  # in the object store once, read by every trial
        return tune.with_parameters(resumable(train_trial), dataset=dataset)
    return resumable(train_trial)  # each trial decodes its data itself


def _best_so_far(study: optuna.Study) -> tuple[float, int] | None:
    """The primary objective's best completed value and trial (for a resumed run's progress)."""
    from search.recover import best_complete

    best = best_complete(study)
    return None if best is None else (best.values[0], best.number)


def _callbacks(spec: SearchSpec, run: RunDir, bridge: StudyBridge, *, verbose: bool) -> list:
    from search.progress import ProgressPrinter
    from search.recover import finished_count

    callbacks: list[Any] = []
    if verbose:
        objective = spec.objective
        callbacks.append(
            ProgressPrinter(
                bridge,
                metric=objective.metric,
                mode=_mode(objective.direction),
                total=spec.budget.trials,
                done=finished_count(bridge.study),
                best=_best_so_far(bridge.study),
            )
        )
    return callbacks + logger_callbacks(spec, run.path)


def fit(
    spec: SearchSpec,
    run: RunDir,
    bridge: StudyBridge,
    trainable: Any,
    dataset: Any,
    *,
    trials: int,
    verbose: bool,
    reuse_actors: bool = True,
) -> None:
    """One Tune experiment of ``trials`` trials, sampled and pruned through ``bridge``."""
    from ray import tune

    from search.pruning import PBTScheduler

    metrics = [o.metric for o in spec.study.objectives]
    modes = [_mode(o.direction) for o in spec.study.objectives]
    name = spec.study.scheduler.name if spec.study.scheduler else "optuna"
    # the built-in trial honours train.seed; a custom one may not, and PBT's trials
    # change parameters as they run
    reseed = trainable is None and name != "pbt" and spec.budget.repeated_config == "next_seed"
    searcher = OptunaSearcher(
        bridge, define_by_run(spec), metrics=metrics, modes=modes, reseed=reseed
    )
    scheduler = SCHEDULERS[name](bridge, spec, metrics[0], modes[0])
    pbt = isinstance(scheduler, PBTScheduler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tuner = tune.Tuner(
        tune.with_resources(
            _trainable(trainable, dataset), {"cpu": spec.budget.cpu, "gpu": spec.budget.gpu}
        ),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=trials,
            max_concurrent_trials=spec.budget.concurrency,
            # Under PBT, reused function-trainable actors lost rows of result.json
            # (Ray 2.60, tests/test_pbt.py): PBT trials get fresh actors.
            reuse_actors=reuse_actors and not pbt,
            trial_name_creator=_trial_name,
            trial_dirname_creator=_trial_name,
            metric=metrics[0],
            mode=modes[0],
        ),
        # PBT clones other trials' checkpoints: Tune deleting old ones under it
        # logged errors (Ray 2.60), so PBT runs keep them all
        run_config=run_config(
            run,
            bridge.experiment,
            _callbacks(spec, run, bridge, verbose=verbose),
            max_failures=spec.budget.max_failures,
            keep=None if pbt else 1,
        ),
    )
    run_experiment(tuner)
