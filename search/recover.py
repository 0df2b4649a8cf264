"""Bring an interrupted run's study back to a consistent state before resuming.

After Ctrl-C, a SIGKILL of the driver or a machine restart, the Optuna study
is the truth: trials told COMPLETE, PRUNED or FAIL keep their values. A trial
still RUNNING is stale. :func:`recover_study` settles each one:

- the pruner had already stopped it (``pruned_at`` recorded) -> PRUNED;
- its Tune log already holds its final epoch -> COMPLETE with those values;
- otherwise -> FAIL (``interrupted``), and its parameters are enqueued again
  with the trial's last complete checkpoint (or none: from scratch); the new
  trial inherits the intermediate values up to that checkpoint. A trial killed
  before it sampled (and not enqueued with a configuration) has nothing to
  re-run: it is FAIL (``interrupted``) and the budget samples a new one.

A checkpoint counts only when a row of the trial's ``result.json`` names it:
Tune writes that row after the checkpoint directory is complete, so a
half-copied checkpoint of a killed run is never resumed from.

:func:`resumable` wraps any Tune function trainable so that such a
re-enqueued trial starts from the inherited checkpoint through the usual
``tune.get_checkpoint()``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from analysis.results import is_dir, join, result_rows
from analysis.rundir import TUNE_DIR, Attr, RunDir

__all__ = [
    "RESUME_KEY",
    "Recovery",
    "best_complete",
    "checkpoint_epoch",
    "finished_count",
    "latest_checkpoint",
    "recover_study",
    "resumable",
]

#: Config key carrying ``{"path": checkpoint_dir, "step": epochs_done}`` to a re-run trial.
RESUME_KEY = "_sslsearch_resume"


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover_study` did.

    Attributes:
        completed: stale trials whose final epoch was logged, told COMPLETE.
        pruned: stale trials the pruner had stopped, told PRUNED.
        rerun: ``(old number, new number, step)`` of each stale trial re-enqueued
            from its checkpoint at ``step`` (0: from scratch).
        unsampled: stale trials killed before they sampled a configuration (and not
            enqueued with one): told FAIL, not re-run; the budget samples anew.
    """

    completed: tuple[int, ...] = ()
    pruned: tuple[int, ...] = ()
    rerun: tuple[tuple[int, int, int], ...] = ()
    unsampled: tuple[int, ...] = ()


def _rows(directory: str | None) -> list[dict[str, Any]]:
    return result_rows(join(directory, "result.json")) if directory else []


def trial_dir(run: RunDir, trial: FrozenTrial) -> str | None:
    """The Tune trial directory (path or URI) of an Optuna trial (None before Tune started it)."""
    tune_id = trial.user_attrs.get(Attr.TUNE_TRIAL_ID)
    experiment = trial.user_attrs.get(Attr.TUNE_EXPERIMENT, TUNE_DIR)
    if not tune_id:
        return None
    return run.trial_location(experiment, tune_id)


def latest_checkpoint(directory: str | Path | None) -> tuple[str, int] | None:
    """The newest complete checkpoint (path or URI) of a Tune trial dir and its iteration.

    Example:
        >>> latest_checkpoint("no/such/trial") is None
        True
    """
    if directory is None:
        return None
    return _newest(str(directory), _rows(str(directory)))


def _newest(directory: str, rows: list[dict[str, Any]]) -> tuple[str, int] | None:
    found = None
    for row in rows:
        name, step = row.get("checkpoint_dir_name"), row.get("training_iteration")
        if name and step is not None and is_dir(join(directory, name)):
            found = (join(directory, name), int(step))
    return found


def checkpoint_epoch(directory: str, rows: list[dict[str, Any]]) -> tuple[str, int] | None:
    """The newest complete checkpoint of a Tune trial dir and the epoch it holds, from
    ``rows`` (the dir's ``result.json``, already read): the ``epoch`` the trial reported
    with it, which counts the epochs a continued run inherited; its training iteration
    where no row says.

    Example:
        >>> checkpoint_epoch("no/such/trial", []) is None
        True
    """
    found = _newest(directory, rows)
    if found is None:
        return None
    at = [r for r in rows if r.get("training_iteration") == found[1]]
    return found[0], (int(at[-1].get("epoch", found[1])) if at else found[1])


def _is_interrupted(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.FAIL and bool(trial.user_attrs.get(Attr.INTERRUPTED))


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: COMPLETE, PRUNED and FAIL not caused by a stop."""
    ended = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sum(
        1 for t in study.get_trials(deepcopy=False) if t.state in ended and not _is_interrupted(t)
    )


def best_complete(study: optuna.Study) -> FrozenTrial | None:
    """The best COMPLETE trial on the primary objective (None: none completed)."""
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.values and math.isfinite(t.values[0])
    ]
    if not complete:
        return None
    pick = max if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else min
    return pick(complete, key=lambda t: t.values[0])


def _final_values(
    rows: list[dict[str, Any]], offset: int, metrics: list[str], epochs: int
) -> list[float] | None:
    """The objective values of a trial whose last logged row is its final epoch."""
    if not rows:
        return None
    last = rows[-1]
    if int(last.get("training_iteration", 0)) + offset < epochs:
        return None
    try:
        values = [float(last[m]) for m in metrics]
    except (KeyError, TypeError, ValueError):
        return None
    return values if all(math.isfinite(v) for v in values) else None


def recover_study(
    study: optuna.Study,
    *,
    run: RunDir,
    metrics: list[str],
    epochs: int,
    pruning_study: optuna.Study | None = None,
) -> Recovery:
    """Settle every stale RUNNING trial of ``study`` (see the module docstring).

    Args:
        study: the run's study.
        run: the run directory (where the Tune experiments are).
        metrics: the objective metrics, in the study's order.
        epochs: the epochs of a full trial (a log reaching it is a finished trial).
        pruning_study: the primary-objective twin of a multi-objective study.
    """
    completed, pruned, rerun, unsampled = [], [], [], []
    twins = {}
    if pruning_study is not None:
        for twin in pruning_study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            twins[twin.user_attrs.get(Attr.TRIAL_NUMBER)] = twin
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        twin = twins.pop(trial.number, None)
        directory = trial_dir(run, trial)
        offset = int(trial.user_attrs.get(Attr.RESUME_STEP, 0))
        rows = _rows(directory)
        values = _final_values(rows, offset, metrics, epochs)
        if Attr.PRUNED_AT in trial.user_attrs:
            state, values = TrialState.PRUNED, None
            pruned.append(trial.number)
        elif values is not None:
            state = TrialState.COMPLETE
            completed.append(trial.number)
        else:
            state = TrialState.FAIL
        if twin is not None:
            twin_values = values[0] if values else None
            pruning_study.tell(twin.number, twin_values, state=state)
        if state != TrialState.FAIL:
            study.tell(trial.number, values, state=state)
            continue
        settled = _rerun(study, trial, directory, offset)
        if settled is None:
            unsampled.append(trial.number)
        else:
            rerun.append(settled)
    for twin in twins.values():  # a twin whose trial was settled already
        pruning_study.tell(twin.number, state=TrialState.FAIL)
    return Recovery(
        completed=tuple(completed),
        pruned=tuple(pruned),
        rerun=tuple(rerun),
        unsampled=tuple(unsampled),
    )


def _rerun(
    study: optuna.Study, trial: FrozenTrial, directory: str | None, offset: int
) -> tuple[int, int, int] | None:
    """Tell an interrupted trial FAIL and enqueue its configuration again from its last
    checkpoint: ``(old number, new number, step)``; None when it had none to re-run."""
    found = latest_checkpoint(directory)
    if found is not None:
        path, step = str(found[0]), found[1] + offset
    elif trial.user_attrs.get(Attr.RESUME_CHECKPOINT):  # itself a re-run that made no new one
        path, step = trial.user_attrs[Attr.RESUME_CHECKPOINT], offset
    else:
        path, step = "", 0
    # a trial killed between ask and sampling has no params yet: keep what it was
    # enqueued with (itself a re-run, or a seeded configuration)
    params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
    live = optuna.Trial(study, trial._trial_id)
    live.set_user_attr(Attr.INTERRUPTED, True)
    if not params:  # never sampled: no configuration to re-run; the budget draws anew
        live.set_user_attr(
            Attr.FAIL_REASON, "interrupted before it sampled its configuration: nothing to re-run"
        )
        study.tell(trial.number, state=TrialState.FAIL)
        return None
    study.enqueue_trial(
        params,
        user_attrs={
            Attr.RESUMED_FROM: trial.number,
            Attr.RESUME_CHECKPOINT: path,
            Attr.RESUME_STEP: step,
            **({Attr.SEED: trial.user_attrs[Attr.SEED]} if Attr.SEED in trial.user_attrs else {}),
            **{k: v for k, v in trial.user_attrs.items() if k.startswith(Attr.FIXED_PREFIX)},
        },
    )
    new_number = study.get_trials(deepcopy=False)[-1].number
    how = f"from its checkpoint at epoch {step}" if path else "from scratch"
    live.set_user_attr(
        Attr.FAIL_REASON,
        f"interrupted: the run stopped while it ran; re-run as trial {new_number} {how}",
    )
    study.tell(trial.number, state=TrialState.FAIL)
    return trial.number, new_number, step


def resumable(trainable: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Tune function trainable so a re-run trial starts from its inherited checkpoint.

    The wrapper removes :data:`RESUME_KEY` from the config and, when Tune has no
    checkpoint of its own for the trial, makes ``tune.get_checkpoint()`` return
    the inherited one. The trainable itself needs nothing beyond the usual
    ``tune.get_checkpoint()`` at its start.

    Example:
        >>> def train(config):
        ...     return sorted(config)
        >>> resumable(train)({"x": 1, RESUME_KEY: {"path": "", "step": 0}})
        ['x']
    """

    @functools.wraps(trainable)
    def wrapper(config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        config = dict(config)
        resume = config.pop(RESUME_KEY, None)
        if resume and resume.get("path"):
            from ray import tune
            from ray.train._internal.session import get_session

            session = get_session()
            if session is not None and tune.get_checkpoint() is None:
                if not hasattr(session, "loaded_checkpoint"):
                    raise RuntimeError(
                        "this Ray version's session has no loaded_checkpoint; "
                        "cannot resume an interrupted trial from its checkpoint"
                    )
                session.loaded_checkpoint = tune.Checkpoint(resume["path"])  # path or URI
        return trainable(config, *args, **kwargs)

    return wrapper
