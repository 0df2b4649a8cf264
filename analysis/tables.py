"""A run directory -> ``trials.parquet`` and ``curves.parquet`` with declared schemas.

``trials.parquet``: one row per Optuna trial — number, state, objective
value(s), ``param/<name>`` columns, ``final/<metric>`` for every metric the
trial reported and ``best/<metric>`` in the metric's own direction (the
objectives', ``loss*`` minimised, each probe's as registered; none for a
metric without one, like ``epoch`` or a custom trainable's undeclared metric),
epochs run, pruned-at epoch, wall time, failure reason, the trial it re-runs
after an interruption (``resumed_from``), the ``train.seed`` it ran with
(``seed``: the built-in trainable's; a configuration sampled again runs with
another, ``budget.repeated_config``) and, under PBT, the schedule it
followed (``pbt_schedule``, JSON: epoch, the trial it cloned, the mutated
values from then on). ``curves.parquet``: one row per (trial, reported epoch)
with every reported metric. Both are written atomically (temp file + rename)
and can be rewritten at any time, also while the run is still going: the study
is read through Optuna, the Tune results from their JSON logs, nothing is
locked.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import optuna
import pyarrow as pa
import pyarrow.parquet as pq
from optuna.trial import FrozenTrial

from analysis.results import result_rows
from analysis.rundir import Attr, RunDir, open_storage
from spaces import SearchSpec
from spaces.compile import config_seed, ran_config

__all__ = [
    "CURVES_FIXED",
    "SCHEMA_VERSION",
    "TRIALS_FIXED",
    "build_tables",
    "column",
    "metric_items",
    "param_type",
    "read_curves",
    "write_atomic",
    "write_tables",
]

#: Version of the table layout, stored in each file's schema metadata.
SCHEMA_VERSION = "3"  # 2: resumed_from; curves of all resumes. 3: seed

#: Columns every ``trials.parquet`` has, in order (then ``value/<metric>``,
#: ``param/<name>``, ``final/<metric>``, ``best/<metric>``).
TRIALS_FIXED = pa.schema(
    [
        ("number", pa.int64()),
        ("state", pa.string()),
        ("value", pa.float64()),
        ("epochs", pa.int64()),
        ("pruned_at", pa.int64()),
        ("wall_time_s", pa.float64()),
        ("tune_trial_id", pa.string()),
        ("fail_reason", pa.string()),
        ("resumed_from", pa.int64()),
        ("seed", pa.int64()),
    ]
)

#: Columns every ``curves.parquet`` has (then one float64 column per metric).
CURVES_FIXED = pa.schema([("trial", pa.int64()), ("epoch", pa.int64()), ("time_s", pa.float64())])

# Tune's bookkeeping keys: not metrics of the trial.
_TUNE_KEYS = {
    "trial_id",
    "training_iteration",
    "time_total_s",
    "time_this_iter_s",
    "time_since_restore",
    "iterations_since_restore",
    "timestamp",
    "date",
    "done",
    "pid",
    "hostname",
    "node_ip",
    "config",
    "checkpoint_dir_name",
    "should_checkpoint",
    "timesteps_total",
    "episodes_total",
    "timesteps_since_restore",
    "experiment_tag",
    "epoch",
    "_epoch",
}


def read_curves(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Tune trial id -> its reported rows (one per epoch, restarts de-duplicated).

    Reads every Tune experiment of the run: ``tune`` and the ``tune.N`` of each
    resume, in the run directory or under its ``--storage-path``.
    """
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for result_file in RunDir(run_dir).result_files():
        for row in result_rows(result_file):
            trial_id, epoch = row.get("trial_id"), row.get("training_iteration")
            if trial_id is None or epoch is None:
                continue
            out.setdefault(trial_id, {})[int(epoch)] = row
    return {tid: [rows[e] for e in sorted(rows)] for tid, rows in out.items()}


def metric_items(row: Mapping[str, Any]) -> Iterable[tuple[str, float]]:
    """The numeric metrics of a Tune result row (Tune's own bookkeeping left out)."""
    for key, value in row.items():
        if key in _TUNE_KEYS or key.startswith("config/"):
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        yield key, float(value)


def param_type(values: list[Any]) -> pa.DataType:
    """The narrowest Arrow type holding every value (bool, int64, float64, else string)."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def column(values: list[Any], dtype: pa.DataType) -> pa.Array:
    """An Arrow array of ``dtype`` (values shown as text for a string column)."""
    if dtype == pa.string():
        values = [None if v is None else str(v) for v in values]
    return pa.array(values, type=dtype)


def _best(values: list[float], direction: str) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    return max(finite) if direction == "maximize" else min(finite)


def build_tables(
    run_dir: str | Path, *, storage: str | None = None, study_name: str | None = None
) -> tuple[pa.Table, pa.Table]:
    """Read the study and the Tune results of ``run_dir`` into ``(trials, curves)`` tables."""
    run = RunDir(run_dir)
    spec = run.spec()
    if storage is None and study_name is None:
        study = run.open_study()
    else:
        study = optuna.load_study(
            study_name=study_name or spec.study.name,
            storage=open_storage(storage or run.study_ref()[0]),
        )
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    curves = _Curves(trials, read_curves(run.path))
    objectives = [o.metric for o in spec.study.objectives][: len(study.directions)]
    directions = {m: d.name.lower() for m, d in zip(objectives, study.directions, strict=False)}
    for name in curves.metric_names:
        if name not in directions:
            directions[name] = run.direction(name)
    seeds = _seeds(spec, trials) if run.info().builtin_trainable else [None] * len(trials)
    return (
        _trials_table(trials, curves, objectives, directions, seeds),
        _curves_table(curves),
    )


def _seeds(spec: SearchSpec, trials: list[FrozenTrial]) -> list[int | None]:
    """The ``train.seed`` each trial ran with (None: it never sampled its parameters)."""
    out: list[int | None] = []
    for t in trials:
        if not t.params and spec.sampled:
            out.append(None)
            continue
        out.append(config_seed(ran_config(spec, t)))
    return out


class _Curves:
    """Every trial's reported rows by epoch, a re-run's inherited epochs included."""

    def __init__(self, trials: list[FrozenTrial], by_tune_id: dict[str, list[dict]]) -> None:
        self.metric_names: list[str] = []
        self.rows: list[dict[str, Any]] = []  # curves.parquet's rows
        self.per_trial: dict[int, list[dict[str, float]]] = {}
        rows_of: dict[int, list[dict[str, Any]]] = {}
        for t in trials:
            rows = by_tune_id.get(t.user_attrs.get(Attr.TUNE_TRIAL_ID, ""), [])
            step = int(t.user_attrs.get(Attr.RESUME_STEP, 0))
            if step:  # re-run from an interrupted trial's checkpoint: its epochs, then ours
                source = rows_of.get(t.user_attrs[Attr.RESUMED_FROM], [])
                inherited = [r for r in source if r["_epoch"] <= step]
                rows = inherited + [{**r, "_epoch": r["training_iteration"] + step} for r in rows]
            else:
                rows = [{**r, "_epoch": r["training_iteration"]} for r in rows]
            rows_of[t.number] = rows
            self.per_trial[t.number] = [self._add(t.number, row) for row in rows]

    def _add(self, number: int, row: Mapping[str, Any]) -> dict[str, float]:
        metrics = dict(metric_items(row))
        for name in metrics:
            if name not in self.metric_names:
                self.metric_names.append(name)
        time_s = float(row.get("time_total_s", math.nan))
        self.rows.append(
            {"trial": number, "epoch": int(row["_epoch"]), "time_s": time_s, **metrics}
        )
        return metrics

    def series(self, number: int, metric: str) -> list[float]:
        return [m[metric] for m in self.per_trial[number] if metric in m]


def _attrcolumn(trials: list[FrozenTrial], key: str, dtype: pa.DataType) -> pa.Array:
    return pa.array([t.user_attrs.get(key) for t in trials], dtype)


def _trials_table(
    trials: list[FrozenTrial],
    curves: _Curves,
    objectives: list[str],
    directions: Mapping[str, str | None],
    seeds: list[int | None],
) -> pa.Table:
    pruned = optuna.trial.TrialState.PRUNED
    columns: dict[str, pa.Array] = {
        "number": pa.array([t.number for t in trials], pa.int64()),
        "state": pa.array([t.state.name for t in trials], pa.string()),
        "value": pa.array([t.values[0] if t.values else None for t in trials], pa.float64()),
        "epochs": pa.array([len(curves.per_trial[t.number]) for t in trials], pa.int64()),
        "pruned_at": pa.array(
            [
                t.user_attrs.get(Attr.PRUNED_AT, t.last_step) if t.state == pruned else None
                for t in trials
            ],
            pa.int64(),
        ),
        "wall_time_s": pa.array(
            [
                (t.datetime_complete - t.datetime_start).total_seconds()
                if t.datetime_complete and t.datetime_start
                else None
                for t in trials
            ],
            pa.float64(),
        ),
        "tune_trial_id": _attrcolumn(trials, Attr.TUNE_TRIAL_ID, pa.string()),
        "fail_reason": _attrcolumn(trials, Attr.FAIL_REASON, pa.string()),
    }
    if any(Attr.PBT_SCHEDULE in t.user_attrs for t in trials):  # PBT: what each trial followed
        columns["pbt_schedule"] = pa.array(
            [
                json.dumps(t.user_attrs[Attr.PBT_SCHEDULE])
                if Attr.PBT_SCHEDULE in t.user_attrs
                else None
                for t in trials
            ],
            pa.string(),
        )
    columns["resumed_from"] = _attrcolumn(trials, Attr.RESUMED_FROM, pa.int64())
    columns["seed"] = pa.array(seeds, pa.int64())
    for i, metric in enumerate(objectives):
        columns[f"value/{metric}"] = pa.array(
            [t.values[i] if t.values else None for t in trials], pa.float64()
        )
    columns.update(_param_columns(trials))
    for name in curves.metric_names:
        series = [curves.series(t.number, name) for t in trials]
        direction = directions.get(name)
        columns[f"final/{name}"] = pa.array([s[-1] if s else None for s in series], pa.float64())
        if direction is not None:  # no best of a metric with no better direction
            columns[f"best/{name}"] = pa.array(
                [_best(s, direction) if s else None for s in series], pa.float64()
            )
    meta = {b"sslsearch.schema": f"trials/{SCHEMA_VERSION}".encode()}
    return pa.table(columns).replace_schema_metadata(meta)


def _param_columns(trials: list[FrozenTrial]) -> dict[str, pa.Array]:
    """``param/<name>`` for every sampled and fixed parameter, in first-seen order."""
    names: list[str] = []
    for t in trials:
        fixed = [
            k.removeprefix(Attr.FIXED_PREFIX)
            for k in t.user_attrs
            if k.startswith(Attr.FIXED_PREFIX)
        ]
        for name in [*t.params, *fixed]:
            if name not in names:
                names.append(name)
    columns = {}
    for name in names:
        values = [t.params.get(name, t.user_attrs.get(Attr.FIXED_PREFIX + name)) for t in trials]
        columns[f"param/{name}"] = column(values, param_type(values))
    return columns


def _curves_table(curves: _Curves) -> pa.Table:
    rows = curves.rows
    columns: dict[str, pa.Array] = {
        "trial": pa.array([r["trial"] for r in rows], pa.int64()),
        "epoch": pa.array([r["epoch"] for r in rows], pa.int64()),
        "time_s": pa.array([r["time_s"] for r in rows], pa.float64()),
    }
    for name in curves.metric_names:
        columns[name] = pa.array([r.get(name) for r in rows], pa.float64())
    meta = {b"sslsearch.schema": f"curves/{SCHEMA_VERSION}".encode()}
    return pa.table(columns).replace_schema_metadata(meta)


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # as every other file of the run (mkstemp: 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_tables(run_dir: str | Path, **kwargs: Any) -> tuple[Path, Path]:
    """(Re)write ``trials.parquet`` and ``curves.parquet`` of ``run_dir`` atomically."""
    run = RunDir(run_dir)
    trials, curves = build_tables(run.path, **kwargs)
    run.require_writable("report")
    trials_path, curves_path = run.trials_path, run.curves_path
    with open(run.path / ".tables.lock", "a") as lock:  # one writer at a time: then every
        fcntl.flock(lock, fcntl.LOCK_EX)  # temporary file left is an interrupted write's
        for path in (trials_path, curves_path):
            for stale in run.path.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)
        write_atomic(trials, trials_path)
        write_atomic(curves, curves_path)
    return trials_path, curves_path
