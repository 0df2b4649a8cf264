"""The confirm study as tables: ``confirm.parquet`` and the ablation table a paper prints.

``confirm.parquet``: one row per long run (a configuration at one seed) with
the columns of :data:`CONFIRM_FIXED`, then ``param/<name>`` (the
configuration) and ``metric/<name>`` (every metric of its last epoch).

The ablation table: one row per configuration, in short-run order, with its
swept values, its short-run score and each long-run metric as mean +- std
over the seeds, written as ``ablation.md`` (Markdown), ``ablation.tex``
(LaTeX, booktabs) and ``ablation.csv`` (mean, std and n in their own columns).
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from analysis.confirm import ConfirmPlan, LongRun, load_plan, long_runs
from analysis.holds import Confirmation, judge
from analysis.rundir import RunDir, write_text_atomic
from analysis.tables import column, param_type, write_atomic

__all__ = [
    "CONFIRM_FIXED",
    "ablation_table",
    "confirm_table",
    "confirmation",
    "csv_table",
    "latex_table",
    "markdown_table",
    "read_confirm",
    "write_confirm_tables",
]

#: Columns every ``confirm.parquet`` has, in order (then ``param/<name>``, ``metric/<name>``).
CONFIRM_FIXED = pa.schema(
    [
        ("config", pa.string()),  # the configuration's key (its parameters as JSON)
        ("rank", pa.int64()),  # its place in the short-run ranking (1: best)
        ("role", pa.string()),  # top | control
        ("short", pa.float64()),  # its short-run objective
        ("seed", pa.int64()),
        ("epochs", pa.int64()),
        ("plan", pa.string()),  # the plan's tag (budget and overrides)
        ("state", pa.string()),  # COMPLETE | FAIL
        ("value", pa.float64()),  # the long-run objective
        ("fail_reason", pa.string()),
    ]
)


def read_confirm(run: RunDir) -> tuple[ConfirmPlan, list[LongRun]] | None:
    """The plan and its long runs (None: ``confirm`` never ran here)."""
    plan = load_plan(run)
    if plan is None:
        return None
    study = run.side_study("confirm")
    if study is None:  # confirm stopped before its first long run ended
        return plan, []
    return plan, long_runs(study, plan)


def _short_metrics(run: RunDir) -> dict[int, dict[str, float]]:
    if not run.trials_path.exists():
        return {}
    out: dict[int, dict[str, float]] = {}
    for row in pq.read_table(run.trials_path).to_pylist():
        out[int(row["number"])] = {
            k.removeprefix("final/"): float(v)
            for k, v in row.items()
            if k.startswith("final/") and isinstance(v, int | float) and not isinstance(v, bool)
        }
    return out


def confirmation(run: RunDir) -> Confirmation | None:
    """The judgement of the run's long runs (None: none completed yet)."""
    found = read_confirm(run)
    if found is None:
        return None
    plan, runs = found
    objective = run.spec().study.objectives[0]
    return judge(
        plan,
        runs,
        metric=objective.metric,
        direction=objective.direction,
        metrics=run.metrics(),
        short_metrics=_short_metrics(run),
    )


def confirm_table(plan: ConfirmPlan, runs: Sequence[LongRun], metric: str) -> pa.Table:
    """``confirm.parquet``'s table: one row per long run, in short-run order then seed."""
    by_key = {c.key: c for c in plan.candidates}
    rows = sorted((r for r in runs if r.key in by_key), key=lambda r: (by_key[r.key].rank, r.seed))
    fixed: dict[str, list[Any]] = {f.name: [] for f in CONFIRM_FIXED}
    for r in rows:
        c = by_key[r.key]
        value = r.metrics.get(metric) if r.state == "COMPLETE" else None
        for name, v in zip(
            fixed,
            (
                r.key,
                c.rank,
                c.role,
                c.short,
                r.seed,
                plan.epochs,
                plan.tag,
                r.state,
                value,
                r.reason,
            ),
            strict=True,
        ):
            fixed[name].append(v)
    columns: dict[str, pa.Array] = {
        f.name: pa.array(fixed[f.name], type=f.type) for f in CONFIRM_FIXED
    }
    params = sorted({p for c in plan.candidates for p in c.params})
    for p in params:
        values = [by_key[r.key].params.get(p) for r in rows]
        columns[f"param/{p}"] = column(values, param_type(values))
    for m in sorted({m for r in rows for m in r.metrics}):
        columns[f"metric/{m}"] = pa.array([r.metrics.get(m) for r in rows], type=pa.float64())
    meta = {b"sslsearch.schema": b"confirm/1"}
    return pa.table(columns).replace_schema_metadata(meta)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    sd = statistics.stdev(finite) if len(finite) > 1 else 0.0
    return statistics.fmean(finite), sd, len(finite)


def ablation_table(c: Confirmation, metrics: Sequence[str] | None = None) -> tuple[list, list]:
    """``(header, rows)``: per configuration its rank, role, values, short-run score and,
    per long-run metric (the objective first), ``(mean, std, n)``.

    ``metrics`` default: the objective, then every other metric the long runs reported.
    """
    params = sorted({p for r in c.configs for p in r.candidate.params})
    if metrics is None:
        seen = sorted({m for r in c.configs for m in r.metrics} - {c.metric})
        metrics = [c.metric, *seen]
    header = ["rank", "role", *params, f"short {c.metric}", *metrics]
    rows = []
    for r in c.configs:
        values = [r.candidate.params.get(p) for p in params]
        stats = [_mean_std(r.metrics.get(m, ())) for m in metrics]
        rows.append([r.candidate.rank, r.candidate.role, *values, r.candidate.short, *stats])
    return header, rows


def _cell(value: Any, *, pm: str) -> str:
    if isinstance(value, tuple):
        mean, sd, n = value
        return "-" if n == 0 else f"{mean:.4f} {pm} {sd:.4f} ({n})"
    return _fmt(value)


def markdown_table(header: list, rows: list) -> str:
    """The ablation table in Markdown (``mean ± std (n)`` cells)."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(v, pm="±") for v in row) + " |")
    return "\n".join(lines) + "\n"


_LATEX = str.maketrans({"_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$"})


def latex_table(header: list, rows: list, caption: str) -> str:
    """The ablation table as a LaTeX ``table`` (booktabs rules; ``_ % & # $`` escaped)."""

    def cell(v: Any) -> str:
        if isinstance(v, tuple):
            mean, sd, n = v
            return "--" if n == 0 else f"${mean:.4f} \\pm {sd:.4f}$"
        return _fmt(v).translate(_LATEX)

    lines = [
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{caption.translate(_LATEX)}}}",
        "\\begin{tabular}{" + "l" * len(header) + "}",
        "\\toprule",
        " & ".join(str(h).translate(_LATEX) for h in header) + " \\\\",
        "\\midrule",
        *(" & ".join(cell(v) for v in row) + " \\\\" for row in rows),
        "\\bottomrule",
        "\\end{tabular}",
        "\\end{table}",
    ]
    return "\n".join(lines) + "\n"


def csv_table(header: list, rows: list) -> str:
    """The ablation table as CSV, a metric's mean, std and n in three columns."""
    out = io.StringIO()
    writer = csv.writer(out)
    flat = []
    for h, v in zip(header, rows[0] if rows else header, strict=True):
        flat += [f"{h} mean", f"{h} std", f"{h} n"] if isinstance(v, tuple) else [h]
    writer.writerow(flat)
    for row in rows:
        cells: list[Any] = []
        for v in row:
            cells += list(v) if isinstance(v, tuple) else [v]
        writer.writerow(cells)
    return out.getvalue()


def write_confirm_tables(run_dir: str | Path) -> list[Path]:
    """(Re)write ``confirm.parquet`` and ``ablation.md/.tex/.csv`` (nothing before confirm)."""
    run = RunDir(run_dir)
    found = read_confirm(run)
    if found is None:
        return []
    plan, runs = found
    objective = run.spec().study.objectives[0]
    write_atomic(confirm_table(plan, runs, objective.metric), run.confirm_path)
    written = [run.confirm_path]
    c = confirmation(run)
    if c is None:
        return written
    header, rows = ablation_table(c)
    caption = (
        f"{run.spec().study.name}: the short-run ranking re-trained for {plan.epochs} epochs, "
        "mean and standard deviation over seeds"
    )
    for suffix, text in (
        ("md", markdown_table(header, rows)),
        ("tex", latex_table(header, rows, caption)),
        ("csv", csv_table(header, rows)),
    ):
        path = run.ablation_path(suffix)
        write_text_atomic(path, text)
        written.append(path)
    return written
