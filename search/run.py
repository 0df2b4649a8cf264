"""Run and resume the study of a search spec, into one run directory.

``run_search(spec, out=RUN_DIR)`` writes ``RUN_DIR/spec.yaml``, creates the
Optuna study in ``RUN_DIR/study.db``, runs the Tune experiment
(:mod:`search.tuner`) under ``RUN_DIR/tune``, then writes the Parquet tables
and the report. ``resume_search(RUN_DIR)`` settles the interrupted trials and
continues to the budget (each resume a new Tune experiment ``tune.N``). Both
end in :func:`_session`: one Tune experiment, then the tables, the report and
the summary. Progress and the summary go to the ``search`` logger (the CLI
prints it).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.rundir import RunDir, RunInfo, connect_storage, resolve_storage_url
from search.dataset import absolute_data_path, builtin_dataset
from search.errors import RunError, RunInterrupted
from search.tuner import build_bridge, check_resources, fit, init_ray
from spaces import SearchSpec, SpecError
from trainables.errors import InputError

__all__ = [
    "RunError",
    "RunInterrupted",
    "RunResult",
    "as_spec",
    "load_trainable",
    "resume_search",
    "run_search",
]

logger = logging.getLogger(__name__)


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


def load_trainable(target: str) -> Any:
    """``module:function`` -> the function; the module is shipped to Ray workers by value.

    Raises:
        InputError: not ``module:function``, or it cannot be imported.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"--trainable {target!r}: expected module:function")
    sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: modules next to you import
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"--trainable {target!r}: cannot import {module_name} ({err})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise InputError(f"--trainable {target!r}: {module_name} has no function {attr}")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # workers need not find the module
    return fn


def _trainable_ref(trainable: Any) -> str | None:
    """``module:function`` of an importable trainable (so ``resume`` can find it again)."""
    module, name = getattr(trainable, "__module__", None), getattr(trainable, "__qualname__", "")
    if not module or module == "__main__" or "<" in name:
        return None
    return f"{module}:{name}"


def run_search(
    spec: SearchSpec | str | Path | Mapping[str, Any],
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
        spec: a validated search spec (:func:`spaces.load_spec`), or what one is
            read from: a space file's path, or the space as a mapping (checked
            as ``spaces check`` checks a file).
        out: the run directory; must not already hold a run.
        trainable: a Ray Tune function trainable; default
            :func:`trainables.trainable.train_trial` on the spec's dataset.
        address: an existing Ray cluster to attach to; a local Ray otherwise.
        num_cpus: CPUs of the local Ray (default: all).
        verbose: show progress and log the final summary.
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
        InputError: ``out`` already holds a run, or is a file or not writable.
        RunError: no trial completed.
        RunInterrupted: the run was stopped (Ctrl-C) before its budget was spent;
            :func:`resume_search` continues it.

    Example:
        >>> from spaces import load_spec  # doctest: +SKIP
        >>> result = run_search(load_spec("spaces/default.yaml"), out="runs/x")  # doctest: +SKIP
    """
    spec = as_spec(spec, builtin_trainable=trainable is None)
    run = RunDir(Path(out).resolve())
    for note in spec.notes:  # advice from the checks: the space runs, perhaps not as meant
        logger.warning("note: %s", note)
    run.require_new()
    base = dataset = None
    if trainable is None:  # decode the data first: a bad path fails before anything is written
        base, dataset = builtin_dataset(spec)
        spec = absolute_data_path(spec)  # spec.yaml finds it from anywhere (resume, confirm)
    storage = resolve_storage_url(spec.study.storage, run.path)
    if spec.study.storage:  # a server that does not answer: refused before run.json
        connect_storage(storage, run.path)
    init_ray(address, num_cpus=num_cpus)
    check_resources(spec)  # before anything is written: Tune would wait forever
    run.create()
    info = RunInfo(
        builtin_trainable=trainable is None,
        trainable=None if trainable is None else _trainable_ref(trainable),
        storage_path=f"{storage_path.rstrip('/')}/{run.path.name}" if storage_path else None,
        started=False,
    )
    run.write_info(info)  # first: a directory with run.json alone holds no run yet
    run.write_spec(spec)  # the storage as written: resolved against the run dir when opened
    bridge = build_bridge(spec, storage, info.experiments[0])
    _start(spec, run, bridge, info, base=base, dataset=dataset)
    return _session(
        spec,
        run,
        bridge,
        trainable,
        dataset if share_dataset else None,
        trials=spec.budget.trials,
        verbose=verbose,
        reuse_actors=reuse_actors,
    )


def _start(
    spec: SearchSpec, run: RunDir, bridge: Any, info: RunInfo, *, base: Any, dataset: Any
) -> RunInfo:
    """What a run sets up before its first trial: the study, its enqueued
    configurations and, for the built-in trainable, the metrics and baselines;
    then ``run.json`` says so. Each step may be done again, so a resume after a
    kill here finishes it."""
    for point in spec.study.enqueue:  # configurations to run first (e.g. the paper's defaults)
        bridge.study.enqueue_trial(dict(point), skip_if_exists=True)
    bridge.study  # noqa: B018 - create the study before any trial starts
    if info.builtin_trainable:
        from trainables.catalogue import live
        from trainables.loop import baseline_metrics

        run.write_metrics(live().metrics())
        logger.info("measuring the baselines: the random-init encoder and the raw pixels ...")
        run.write_baselines(baseline_metrics(base, dataset))
    info = dataclasses.replace(info, started=True)
    run.write_info(info)
    return info


def _resumed_spec(run: RunDir, old: SearchSpec, spec: SearchSpec | None) -> SearchSpec:
    """The spec a resume continues with: the run's own, or an edit it may accept."""
    from spaces.diff import incompatibilities

    if spec is None:
        return old
    problems = incompatibilities(old, spec)
    if problems:
        head = f"cannot resume {run.path}: the edit changes what its study has sampled"
        lines = [(str(spec.source), 0, "", head)]
        for problem in problems:
            key, _, message = problem.partition(": ")
            lines.append((str(spec.source), 0, key, message))
        raise SpecError(lines)
    for note in spec.notes:  # the edit's advice; the run's own was logged when it started
        logger.warning("note: %s", note)
    return dataclasses.replace(
        spec, study=dataclasses.replace(spec.study, storage=old.study.storage)
    )


def as_spec(
    spec: SearchSpec | str | Path | Mapping[str, Any], *, builtin_trainable: bool = True
) -> SearchSpec:
    """A spec as given, or read and checked from a space file's path or a mapping.

    Raises:
        SpecError: the space is refused (every problem, located).
        TypeError: ``spec`` is none of these.

    Example:
        >>> as_spec({"budget": {"trials": 3}}).budget.trials
        3
    """
    from spaces import load_spec, parse_spec

    if isinstance(spec, SearchSpec):
        return spec
    if isinstance(spec, str | os.PathLike):
        return load_spec(spec, builtin_trainable=builtin_trainable)
    if isinstance(spec, Mapping):
        return parse_spec(dict(spec), source="<mapping>", builtin_trainable=builtin_trainable)
    raise TypeError(
        f"spec: expected a SearchSpec, a space file's path or a mapping, got {type(spec).__name__}"
    )


def resume_search(
    out: str | Path,
    *,
    spec: SearchSpec | str | Path | Mapping[str, Any] | None = None,
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
    directory, with the sampler continuing from the study's history. A run
    killed before its first trial (``run.json``: not ``started``) has its
    start-up finished first (the study, the baselines) and runs in ``tune``.

    Args:
        out: the run directory of :func:`run_search`.
        spec: an edited space to continue with (budget, fixed values and study
            settings may change; a sampled parameter's distribution may not), as
            for :func:`run_search`.
            Default: the run's ``spec.yaml``.
        trainable: the run's own trainable, when it was not the built-in one
            and cannot be imported by the name recorded in ``run.json``.
        address, num_cpus, verbose: as for :func:`run_search`.

    Raises:
        InputError: ``out`` holds no run, or its trainable cannot be found.
        SpecError: the edited space changes what the study has sampled (a readable diff).

    Example:
        >>> result = resume_search("runs/demo")  # doctest: +SKIP
    """
    from search.recover import finished_count, recover_study

    run = RunDir(Path(out).resolve())
    run.require_run()
    run.require_writable("resume")
    info = run.info()
    old = run.spec(check_trainables=True)
    given = None if spec is None else as_spec(spec, builtin_trainable=info.builtin_trainable)
    spec = _resumed_spec(run, old, given)
    new_session = info.started  # else a kill cut the start-up short: no trial has run
    if new_session:
        run.open_study()  # missing, or not this spec's: refused before anything is written
    if trainable is None and not info.builtin_trainable:
        if not info.trainable:
            raise InputError(
                f"{run.path} ran a trainable that cannot be imported by name; "
                "pass it again (resume_search(..., trainable=...) or --trainable module:function)"
            )
        trainable = load_trainable(info.trainable)
    base, dataset = builtin_dataset(spec) if trainable is None else (None, None)
    experiment = info.next_experiment() if new_session else info.experiments[-1]
    session = len(info.experiments) if new_session else 0
    bridge = build_bridge(spec, run.study_ref()[0], experiment, session=session)
    if not new_session:
        logger.info("%s stopped before its first trial: finishing its start-up", run.path)
        info = _start(spec, run, bridge, info, base=base, dataset=dataset)
    recovery = recover_study(
        bridge.study,
        run=run,
        metrics=[o.metric for o in spec.study.objectives],
        epochs=spec.budget.epochs,
        pruning_study=bridge.pruning_study if bridge.multi_objective else None,
    )
    done = finished_count(bridge.study)
    remaining = max(0, spec.budget.trials - done)
    if spec is not old:
        run.archive_spec()
        run.write_spec(spec)
    _log_resume(run, spec, recovery, done=done, remaining=remaining)
    if remaining and new_session:
        run.write_info(info.with_experiment(experiment))
    return _session(
        spec,
        run,
        bridge,
        trainable,
        dataset,
        trials=remaining,
        verbose=verbose,
        address=address,
        num_cpus=num_cpus,
    )


def _log_resume(run: RunDir, spec: SearchSpec, recovery: Any, *, done: int, remaining: int) -> None:
    logger.info(
        "resuming %s: %d/%d trials finished (%d completed and %d pruned while the run stopped);"
        " %d interrupted trial(s) re-run%s%s; %d trial(s) to go",
        run.path,
        done,
        spec.budget.trials,
        len(recovery.completed),
        len(recovery.pruned),
        len(recovery.rerun),
        "".join(
            f"\n  trial {a} -> trial {b} "
            + (f"from its checkpoint at epoch {s}" if s else "from scratch")
            for a, b, s in recovery.rerun
        ),
        f"; {len(recovery.unsampled)} interrupted before sampling, drawn anew"
        if recovery.unsampled
        else "",
        remaining,
    )


def _session(
    spec: SearchSpec,
    run: RunDir,
    bridge: Any,
    trainable: Any,
    dataset: Any,
    *,
    trials: int,
    verbose: bool,
    reuse_actors: bool = True,
    address: str | None = None,
    num_cpus: int | None = None,
) -> RunResult:
    """Run ``trials`` more trials (if any), then the noise floor's re-runs (once the
    search is complete), then write the tables and the report."""
    from search.noise import measure_noise, noise_pending

    if trials:
        init_ray(address, num_cpus=num_cpus)
        check_resources(spec)
        fit(
            spec,
            run,
            bridge,
            trainable,
            dataset,
            trials=trials,
            verbose=verbose,
            reuse_actors=reuse_actors,
        )
    finished, running = _progress(run)
    done = not running and finished >= spec.budget.trials
    if done and (due := noise_pending(run, spec, builtin=trainable is None)):
        init_ray(address, num_cpus=num_cpus)
        check_resources(spec)
        try:
            measure_noise(spec, run, dataset, due, verbose=verbose)
        except Exception:  # the search's results stand: write them, say how to retry
            logger.exception("the noise floor could not be measured")
    return _finish(run, spec, builtin=trainable is None, verbose=verbose)


def _progress(run: RunDir) -> tuple[int, int]:
    """``(trials counted against the budget, trials still RUNNING)`` in the study."""
    import optuna

    from search.recover import finished_count

    study = run.open_study()
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    return finished_count(study), len(running)


def _finish(run: RunDir, spec: SearchSpec, *, builtin: bool, verbose: bool) -> RunResult:
    """Write the tables; raise :class:`RunInterrupted` if the run stopped before its end."""

    from analysis.report import write_report
    from analysis.tables import write_tables
    from search.noise import noise_pending

    write_tables(run.path)
    try:
        logger.info("report: %s", write_report(run.path))
    except Exception as err:  # the run's results stand without the report
        logger.error(
            "the report could not be written (%s: %s); the tables are in %s; "
            "retry with: sslsearch report %s",
            type(err).__name__,
            err,
            run.path,
            run.path,
        )
    finished, running = _progress(run)
    if running or finished < spec.budget.trials:
        raise RunInterrupted(
            f"the run stopped with {finished}/{spec.budget.trials} trials finished"
            f" and {running} running; continue it with: sslsearch resume {run.path}"
        )
    due = noise_pending(run, spec, builtin=builtin)
    if due is not None:
        raise RunInterrupted(
            f"the run stopped before the noise floor was measured (trial {due[0].number} "
            f"still to re-run with seed(s) {', '.join(map(str, due[1]))}); "
            f"continue it with: sslsearch resume {run.path}"
        )
    return summarize(run, verbose=verbose)


def summarize(run: RunDir, *, verbose: bool) -> RunResult:
    """Read the finished study back and (optionally) log its summary."""
    from analysis.summary import format_summary

    study = run.open_study()
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if verbose:
        logger.info("%s", format_summary(run.path))
    if not complete:
        raise RunError(f"no trial completed; see {run.trials_path} for the reasons")
    best = study.best_trial if len(study.directions) == 1 else study.best_trials[0]
    return RunResult(
        run_dir=run.path,
        storage=run.study_ref()[0],
        study_name=study.study_name,
        best_number=best.number,
        best_value=best.values[0],
        best_params=dict(best.params),
        states=states,
    )
