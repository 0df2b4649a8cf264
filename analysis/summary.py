"""The console summary of a run: states, the top trials, the best config, agreement, cost.

It renders the run's :class:`~analysis.outcome.Outcome` (the report renders
the same digest as HTML), one function per part.
"""

from __future__ import annotations

import math
from pathlib import Path

from analysis.agreement import label_free_metrics
from analysis.holds import holds_sentences
from analysis.outcome import Outcome, digest
from trainables.errors import InputError

__all__ = ["format_summary"]


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.4g}"
    return str(value)


def format_summary(run_dir: str | Path, *, top: int = 5) -> str:
    """Summarise the run in ``run_dir`` from its tables: counts, top trials, best parameters.

    Example:
        >>> print(format_summary("runs/demo"))  # doctest: +SKIP
    """
    outcome = digest(run_dir)
    lines = ["", *_states(outcome)]
    lines += _ranking(outcome, top) if outcome.ranked else _failures(outcome)
    lines += _answer(outcome)
    lines += _agreement(outcome)
    lines += _holds(outcome)
    lines += _cost(outcome)
    lines.append(f"Run directory: {outcome.run.path}")
    return "\n".join(lines)


def _holds(outcome: Outcome) -> list[str]:
    """``sslsearch confirm``'s verdict, once it has long runs."""
    c = outcome.confirmation
    if c is None or c.plan is None:
        return []
    plan = c.plan
    head = f"Does the answer hold? ({plan.epochs} epochs, {plan.seeds} seed(s) each; ablation.md)"
    sentences = holds_sentences(c, points=outcome.ceiling == 1.0)
    return [head, *(f"  {line}" for line in sentences)]


def _states(outcome: Outcome) -> list[str]:
    counts: dict[str, int] = {}
    for r in outcome.trials:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    line = (
        f"Study '{outcome.spec.study.name}': {len(outcome.trials)} trials ("
        + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        + ")"
    )
    if outcome.interrupted:
        line += f"; {outcome.interrupted} of the failed were interrupted and re-run"
    if outcome.repeated:
        line += f"; {outcome.repeated} ran a configuration already run (column seed)"
    return [line]


def _ranking(outcome: Outcome, top: int) -> list[str]:
    metric, ranked, params = outcome.metric, outcome.ranked, outcome.params
    lines = [f"Top {min(top, len(ranked))} by {metric} ({outcome.direction}):"]
    header = ["trial", metric, "epochs"] + [p.removeprefix("param/") for p in params]
    table = [header] + [
        [str(r["number"]), _fmt(r["value"]), str(r["epochs"])] + [_fmt(r[p]) for p in params]
        for r in ranked[:top]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        lines.append("  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    best = ranked[0]
    lines.append(f"Best trial {best['number']}: {metric} = {_fmt(best['value'])}")
    if spread := outcome.best_runs():
        lines.append(f"  {spread}")
    for label, baseline in outcome.baseline_values(metric).items():
        lines.append(
            f"Baseline, {label}: {metric} = {_fmt(baseline)} "
            f"(best trial {best['value'] - baseline:+.4f})"
        )
    lines += _noise(outcome)
    schedule = outcome.pbt_schedule(best)
    lines.append(
        "Best parameters (at its start; PBT changed them as below):"
        if schedule
        else "Best parameters:"
    )
    for name, value in outcome.best_settings(sampled_only=False).items():
        lines.append(f"  {name}: {_fmt(value)}")
    for step in schedule:
        values = ", ".join(f"{k}: {_fmt(v)}" for k, v in step["params"].items())
        lines.append(f"  after epoch {step['epoch']}: cloned trial {step['cloned']}; {values}")
    if len(ranked) > 1:
        worst = ranked[-1]
        lines.append(f"Worst completed trial {worst['number']}: {metric} = {_fmt(worst['value'])}")
    return lines


def _noise(outcome: Outcome) -> list[str]:
    """The noise floor and the trials tied with the best within it."""
    if outcome.noise is None:
        return []
    lines = [f"Noise floor: {outcome.noise.describe(outcome.metric)}"]
    tied = [str(r["number"]) for r in outcome.tied[1:]]
    if outcome.band is not None:
        shown = ", ".join(tied[:10]) + (f" and {len(tied) - 10} more" if len(tied) > 10 else "")
        lines.append(
            f"Tied with the best (within {outcome.band:.3g}): "
            + (f"trial(s) {shown}" if tied else "none")
        )
    return lines


def _answer(outcome: Outcome) -> list[str]:
    """The answer's sentences and its warnings (single-objective studies with trials)."""
    lines = []
    if len(outcome.spec.study.objectives) == 1 and outcome.trials:
        try:  # the answer reads the study (the trials' distributions); the rest needs tables
            lines += ["Answer:", *(f"  {s}" for s in outcome.answer())]
        except InputError as err:
            lines += [f"Answer: not available without the study ({err})"]
    warnings = outcome.warnings()
    if warnings:
        lines += ["Warnings:", *(f"  {w}" for w in warnings)]
    return lines


def _failures(outcome: Outcome) -> list[str]:
    lines = ["No trial completed."]
    for r in outcome.trials:
        if r["fail_reason"]:
            lines.append(f"  trial {r['number']}: {r['fail_reason']}")
    return lines


def _agreement(outcome: Outcome) -> list[str]:
    found = outcome.agreements
    if not found:
        return []
    lines = ["Label-free vs labelled (completed trials):"]
    for a in found:
        lines.append(
            f"  {a.label_free} vs {a.labelled}: Spearman {a.spearman:+.2f} over {a.n} trials; "
            f"selecting by {a.label_free} picks trial {a.selected_trial} "
            f"({a.labelled} {a.selected_labelled:.4f}, {a.accuracy_lost:.4f} below the best)"
        )
    if outcome.metric in label_free_metrics(outcome.run.metrics()):
        for a in found:
            if a.label_free == outcome.metric:
                lines.append(
                    f"  The objective {outcome.metric} is label-free: its best trial is "
                    f"{a.accuracy_lost:.4f} {a.labelled} below the labelled best."
                )
    return lines


def _cost(outcome: Outcome) -> list[str]:
    spent = outcome.spent
    if spent.probe_time_s is None or spent.tune_time_s <= 0:
        return []
    return [
        f"Compute: {spent.trial_epochs} trial-epochs, {spent.tune_time_s:.0f} s of trial time; "
        f"probes took {spent.probe_time_s:.0f} s "
        f"({100 * spent.probe_time_s / spent.tune_time_s:.1f} % of trial time)"
    ]
