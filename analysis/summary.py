"""A console summary of a run directory: states, the top trials, the best config."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import yaml

__all__ = ["format_summary"]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def _baseline(run_dir: Path) -> dict[str, float]:
    path = run_dir / "baseline.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def format_summary(run_dir: str | Path, *, top: int = 5) -> str:
    """Summarise ``RUN_DIR/trials.parquet``: counts, top trials, best parameters.

    Example:
        >>> print(format_summary("runs/demo"))  # doctest: +SKIP
    """
    run_dir = Path(run_dir)
    rows = pq.read_table(run_dir / "trials.parquet").to_pylist()
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8"))
    objective = spec["study"]["objective"]
    objective = objective[0] if isinstance(objective, list) else objective
    metric, direction = objective["metric"], objective.get("direction", "maximize")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    lines = [
        "",
        f"Study '{spec['study']['name']}': {len(rows)} trials ("
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        + ")",
    ]
    interrupted = sum(1 for r in rows if r.get("resumed_from") is not None)
    if interrupted:
        lines[-1] += f"; {interrupted} of the failed were interrupted and re-run"
    complete = [r for r in rows if r["state"] == "COMPLETE" and r["value"] is not None]
    complete.sort(key=lambda r: r["value"], reverse=direction == "maximize")
    params = [k for k in (rows[0] if rows else {}) if k.startswith("param/")]
    if complete:
        lines.append(f"Top {min(top, len(complete))} by {metric} ({direction}):")
        header = ["trial", metric, "epochs"] + [p.removeprefix("param/") for p in params]
        table = [header] + [
            [str(r["number"]), _fmt(r["value"]), str(r["epochs"])] + [_fmt(r[p]) for p in params]
            for r in complete[:top]
        ]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        for row in table:
            lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
        best = complete[0]
        lines.append(f"Best trial {best['number']}: {metric} = {_fmt(best['value'])}")
        baseline = _baseline(run_dir).get(metric)
        if baseline is not None:
            lines.append(
                f"Same encoder at random initialisation: {metric} = {_fmt(baseline)} "
                f"(best trial {best['value'] - baseline:+.4f})"
            )
        schedule = json.loads(best.get("pbt_schedule") or "[]")
        lines.append(
            "Best parameters (at its start; PBT changed them as below):"
            if schedule
            else "Best parameters:"
        )
        for p in params:
            if best[p] is not None:
                lines.append(f"  {p.removeprefix('param/')}: {_fmt(best[p])}")
        for step in schedule:
            values = ", ".join(f"{k}: {_fmt(v)}" for k, v in step["params"].items())
            lines.append(f"  after epoch {step['epoch']}: cloned trial {step['cloned']}; {values}")
        if len(complete) > 1:
            worst = complete[-1]
            lines.append(
                f"Worst completed trial {worst['number']}: {metric} = {_fmt(worst['value'])}"
            )
    else:
        lines.append("No trial completed.")
        for r in rows:
            if r["fail_reason"]:
                lines.append(f"  trial {r['number']}: {r['fail_reason']}")
    lines.extend(_agreement_lines(rows, metric))
    lines.extend(_cost_lines(run_dir))
    lines.append(f"Run directory: {run_dir}")
    return "\n".join(lines)


def _agreement_lines(rows: list[dict], objective: str) -> list[str]:
    from analysis.agreement import LABEL_FREE, all_agreements

    found = all_agreements(rows)
    if not found:
        return []
    lines = ["Label-free vs labelled (completed trials):"]
    for a in found:
        lines.append(
            f"  {a.label_free} vs {a.labelled}: Spearman {a.spearman:+.2f} over {a.n} trials; "
            f"selecting by {a.label_free} picks trial {a.selected_trial} "
            f"({a.labelled} {a.selected_labelled:.4f}, {a.accuracy_lost:.4f} below the best)"
        )
    if objective in LABEL_FREE:
        lost = [a for a in found if a.label_free == objective]
        for a in lost:
            lines.append(
                f"  The objective {objective} is label-free: its best trial is "
                f"{a.accuracy_lost:.4f} {a.labelled} below the labelled best."
            )
    return lines


def _cost_lines(run_dir: Path) -> list[str]:
    path = run_dir / "curves.parquet"
    if not path.exists():
        return []
    curves = pq.read_table(path).to_pylist()
    if not curves or "probe_time_s" not in curves[0]:
        return []
    trial_time: dict[int, float] = {}
    probe = 0.0
    for r in curves:
        trial_time[r["trial"]] = max(trial_time.get(r["trial"], 0.0), r["time_s"] or 0.0)
        probe += r["probe_time_s"] or 0.0
    total = sum(trial_time.values())
    epochs = len(curves)
    if total <= 0:
        return []
    return [
        f"Compute: {epochs} trial-epochs, {total:.0f} s of trial time; "
        f"probes took {probe:.0f} s ({100 * probe / total:.1f} % of trial time)"
    ]
