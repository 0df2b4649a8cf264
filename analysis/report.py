"""A run directory -> ``RUN_DIR/report.html`` (one self-contained file) and ``figures/``.

The report opens with the answer: the best configuration as a YAML snippet to
paste into a space file, what the study's question came out as (the best swept
value with its interval, or the parameters that mattered, which way and how
surely), the warnings that limit it, and what was spent; then the analyses —
importance (fANOVA and PED-ANOVA) and effects (direction and size with 95 %
intervals), both on every trial at the evidence epoch
(:mod:`analysis.evidence`), pruned trials included, and saying so; sweep
curves with 95 % intervals over seeds, learning curves with pruned trials
marked, parallel coordinates of the top trials, the Pareto front
(multi-objective), label-free vs labelled agreement, ranking fidelity per epoch, and
compute. Figures are embedded as PNG data URIs (no network) and also written
to ``figures/``. It reads the tables the run wrote (rewriting them first), so
it works while a run is still going.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from analysis.ablation import write_confirm_tables
from analysis.curves import fidelity, sweep
from analysis.figures import (
    fidelity_figure,
    importance_figure,
    learning_curves_figure,
    parallel_figure,
    pareto_figure,
    sweep_figure,
)
from analysis.holds import holds_sentences
from analysis.importance import Importance
from analysis.outcome import Outcome, digest
from analysis.rundir import RunDir, write_text_atomic
from analysis.tables import write_tables
from spaces.compile import nest

__all__ = ["best_config_yaml", "write_report"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def best_config_yaml(params: Mapping[str, Any]) -> str:
    """The sampled values as nested YAML settings (``mask/ratio`` -> ``mask: {ratio: ...}``).

    Example:
        >>> print(best_config_yaml({"mask/ratio": 0.4, "optim/lr": 0.001}), end="")
        mask:
          ratio: 0.4
        optim:
          lr: 0.001
    """
    rounded = {k: round(v, 6) if isinstance(v, float) else v for k, v in params.items()}
    return yaml.safe_dump(nest(rounded), sort_keys=False)


class _Report:
    """Accumulates HTML sections and figures."""

    def __init__(self, figures_dir: Path) -> None:
        self.parts: list[str] = []
        self.figures_dir = figures_dir
        self.count = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def figure(self, fig: Any, name: str, alt: str) -> None:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        data = buf.getvalue()
        (self.figures_dir / f"{name}.png").write_bytes(data)
        encoded = base64.b64encode(data).decode("ascii")
        self.count += 1
        self.add(
            f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}">'
            f"<figcaption>{html.escape(alt)} — <code>figures/{name}.png</code></figcaption>"
            "</figure>"
        )


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _swept(spec: Any, importances: Sequence[Importance]) -> tuple[list[str], str | None]:
    """The parameters to draw sweep curves for, and the categorical to split lines by."""
    grid = [
        p.name
        for p in spec.params
        if p.kind == "grid" and all(isinstance(v, int | float) for v in p.values)
    ]
    numeric = [p.name for p in spec.params if p.is_range]
    if grid:
        xs = grid
    else:
        ranked = [n for imp in importances for n in imp.values if n in numeric]
        xs = list(dict.fromkeys(ranked + numeric))[:3]
    by = next(
        (
            p.name
            for p in spec.params
            if p.sampled
            and not p.is_range
            and not p.when
            and p.name not in xs
            and 1 < len(p.possible_values()) <= 6
        ),
        None,
    )
    return xs, by


def write_report(run_dir: str | Path, *, top: int = 10) -> Path:
    """Write ``report.html`` and ``figures/*.png`` for the run in ``run_dir``; return the path.

    The tables are rewritten first, so the report works while a run is going.

    Example:
        >>> write_report("runs/demo")  # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """
    run = RunDir(run_dir)
    write_tables(run.path)
    write_confirm_tables(run.path)
    outcome = digest(run.path)
    run.figures_dir.mkdir(exist_ok=True)
    out = _Report(run.figures_dir)
    for section in _SECTIONS:
        section(out, outcome, top)
    page = _page(outcome.spec.study.name, "\n".join(out.parts), out.count)
    write_text_atomic(run.report_path, page)
    return run.report_path


def _summary(out: _Report, o: Outcome, top: int) -> None:
    metric, spent = o.metric, o.spent
    out.add(f"<h1>{html.escape(o.spec.study.name)}</h1>")
    if o.spec.description:
        out.add(f'<p class="question">{html.escape(o.spec.description)}</p>')
    out.add('<section class="summary"><h2>Summary</h2>')
    best = o.best
    if best is not None:
        line = f"Best trial {best['number']}: {metric} = {_fmt(best['value'])}"
        baselines = o.baseline_values(metric)
        if baselines:
            line += " (" + "; ".join(f"{k}: {_fmt(v)}" for k, v in baselines.items()) + ")"
        if spread := o.best_runs():
            line += f"; {spread}"
        out.add(f"<p><b>{html.escape(line)}</b>. Its settings, to paste into a space file:</p>")
        noise = o.noise
        if noise is not None:
            tied = [str(r["number"]) for r in o.tied[1:]]
            text = f"Noise floor: {noise.describe(metric)}."
            if o.band is not None:
                text += " Tied with the best within it: " + (
                    f"trial(s) {', '.join(tied)}." if tied else "none."
                )
            out.add(f"<p><b>Noise.</b> {html.escape(text)}</p>")
        out.add(f"<pre>{html.escape(best_config_yaml(o.best_settings()))}</pre>")
        schedule = o.pbt_schedule(best)
        if schedule:
            steps = [
                f"after epoch {step['epoch']} it cloned trial {step['cloned']} and continued with "
                + ", ".join(f"{k} = {_fmt(v)}" for k, v in step["params"].items())
                for step in schedule
            ]
            out.add(
                "<p>PBT changed them during training: " + html.escape("; ".join(steps)) + ".</p>"
            )
        out.add(f"<p><b>Answer.</b> {html.escape(_answer(o))}</p>")
    else:
        out.add("<p><b>No trial completed yet.</b></p>")
    warnings = o.warnings()
    if warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
        out.add(f'<div class="warnings"><b>Warnings.</b><ul>{items}</ul></div>')
    out.add(
        "<p><b>Spent.</b> "
        + html.escape(
            f"{spent.trials} trials ({spent.states['COMPLETE']} complete, "
            f"{spent.states['PRUNED']} pruned, {spent.states['FAIL']} failed); "
            f"{spent.trial_epochs} trial-epochs of {spent.full_epochs} without pruning "
            f"({100 * spent.saved:.0f} % saved); wall time {o.wall_s / 60:.1f} min"
            + (f"; {spent.trial_time_s / 60:.1f} min of trial time" if spent.trial_time_s else "")
            + (
                f"; {o.repeated} trial(s) ran a configuration already run (the top trials "
                "table gives the seed each ran with)"
                if o.repeated
                else ""
            )
        )
        + "</p></section>"
    )


def _importance(out: _Report, o: Outcome, top: int) -> None:
    importances = o.importances
    out.add("<h2>Parameter importance and effects</h2>")
    out.add(
        "<p>Optuna's evaluators on the primary objective: fANOVA (variance explained) "
        "and PED-ANOVA (what distinguishes the top trials), on "
        f"{html.escape(o.evidence.describe())}: every trial that got there, pruned ones "
        "included, so a setting the pruner stopped still counts.</p>"
    )
    names = list(dict.fromkeys(n for imp in importances for n in imp.values))
    out.add(
        _table(
            ["parameter", *[f"{imp.evaluator} ({imp.n_trials} trials)" for imp in importances]],
            [(n, *[imp.values.get(n, "") for imp in importances]) for n in names]
            or [("", *[imp.note for imp in importances])],
        )
    )
    if any(imp.values for imp in importances):
        out.figure(importance_figure(importances), "importance", "Parameter importance")
    if o.effects:
        out.add(
            "<p>Effects: the change in the objective from the low to the high end of each "
            "range (on its search scale; for a choice, from the first choice to it), the "
            "others held fixed (least squares), with 95 % bootstrap intervals.</p>"
        )
        out.add(
            _table(
                ["parameter", "from", "to", f"change in {o.metric}", "95 % CI", "trials", ""],
                [
                    (
                        e.param,
                        e.low,
                        e.high,
                        f"{e.size:+.3g}",
                        f"{e.ci[0]:+.3g} to {e.ci[1]:+.3g}",
                        e.n,
                        f"{_fmt(e.better)} is better" if e.determined else "not determined",
                    )
                    for e in o.effects
                ],
            )
        )


def _sweeps(out: _Report, o: Outcome, top: int) -> None:
    xs, by = _swept(o.spec, o.importances)
    drawn = False
    for x in xs:
        points = sweep(
            o.trials, param=f"param/{x}", metric="value", by=f"param/{by}" if by else None
        )
        if len({p.x for p in points}) < 2:
            continue
        if not drawn:
            out.add("<h2>Sweep curves</h2>")
            drawn = True
        out.figure(
            sweep_figure(points, param=x, metric=o.metric),
            "sweep_" + x.replace("/", "_"),
            f"{o.metric} vs {x}" + (f", one line per {by}" if by else ""),
        )
        header = [x, f"mean {o.metric}", "95 % low", "95 % high", "trials"]
        rows = [(p.x, p.mean, p.low, p.high, p.n) for p in points]
        if by:  # one line per categorical value: name it in the first column
            header = [by, *header]
            rows = [(p.group, *row) for p, row in zip(points, rows, strict=True)]
        out.add(_table(header, rows))


def _learning_curves(out: _Report, o: Outcome, top: int) -> None:
    out.add("<h2>Learning curves</h2>")
    if any(o.metric in c and c[o.metric] is not None for c in o.curves):
        out.figure(
            learning_curves_figure(o.trials, o.curves, metric=o.metric),
            "learning_curves",
            f"{o.metric} per epoch, every trial (pruned trials end in an x)",
        )
    else:
        out.add(f"<p>No trial has reported {html.escape(o.metric)} yet.</p>")


def _top_trials(out: _Report, o: Outcome, top: int) -> None:
    if not o.ranked:
        return
    n = min(top, len(o.ranked))
    shown = o.shown_params
    out.add(f"<h2>Top {n} trials</h2>")
    out.figure(
        parallel_figure(
            o.trials, params=shown, metric="value", direction=o.direction, top=top, label=o.metric
        ),
        "parallel_coordinates",
        f"Parallel coordinates of the top {n} trials",
    )
    tied = {r["number"] for r in o.tied}
    rows = o.ranked[:top]
    # a configuration sampled again ran with another seed: say which
    seeds = ["seed"] if len({r.get("seed") for r in rows}) > 1 else []
    out.add(
        _table(
            ["trial", o.metric, "tied", "epochs", *seeds, *[_short(p) for p in shown]],
            [
                (
                    r["number"],
                    r["value"],
                    "=" if r["number"] in tied else "",
                    r["epochs"],
                    *[r.get(k) for k in seeds],
                    *[r[p] for p in shown],
                )
                for r in rows
            ],
        )
    )
    if o.band is not None:
        out.add(
            f"<p>= : within the noise band ({o.band:.3g}) of the best: "
            "the ranking cannot tell these apart.</p>"
        )


def _pareto(out: _Report, o: Outcome, top: int) -> None:
    objectives = [(x.metric, x.direction) for x in o.spec.study.objectives]
    if len(objectives) < 2:
        return
    out.add("<h2>Pareto front</h2>")
    front = {t.number for t in o.study.best_trials}
    metrics = [f"value/{m}" for m, _ in objectives]
    out.figure(
        pareto_figure(
            o.trials, metrics=metrics, directions=[d for _, d in objectives], front=front
        ),
        "pareto",
        f"{objectives[0][0]} vs {objectives[1][0]}; Pareto front from Optuna",
    )
    rows = [(r["number"], *[r[m] for m in metrics]) for r in o.trials if r["number"] in front]
    out.add(_table(["trial", *[m for m, _ in objectives]], rows))


def _agreement(out: _Report, o: Outcome, top: int) -> None:
    if not o.agreements:
        return
    out.add("<h2>Label-free vs labelled scores</h2>")
    header = [
        "labelled",
        "label-free",
        "trials",
        "Spearman",
        "best labelled",
        "chosen by label-free",
        "accuracy lost",
    ]
    rows = [
        (
            a.labelled,
            a.label_free,
            a.n,
            a.spearman,
            a.best_labelled,
            a.selected_labelled,
            a.accuracy_lost,
        )
        for a in o.agreements
    ]
    out.add(_table(header, rows))


def _fidelity(out: _Report, o: Outcome, top: int) -> None:
    points = fidelity(o.trials, o.curves, metric=o.metric)
    out.add("<h2>Fidelity: would shorter trials have given the same answer?</h2>")
    if not points:
        out.add("<p>Needs at least 3 completed trials reporting the metric at the same epochs.</p>")
        return
    out.figure(
        fidelity_figure(points, metric=o.metric),
        "fidelity",
        f"Spearman between the ranking after e epochs and the final ranking of {o.metric}",
    )
    out.add(_table(["epoch", "Spearman", "trials"], [(p.epoch, p.spearman, p.n) for p in points]))


def _confirm(out: _Report, o: Outcome, top: int) -> None:
    c = o.confirmation
    if c is None or c.plan is None:
        return
    plan = c.plan
    out.add("<h2>Does the answer hold?</h2>")
    sets = ", ".join(f"{k}={v}" for k, v in plan.sets) if plan and plan.sets else ""
    out.add(
        f"<p>{len(c.configs)} configurations (the {plan.top} best at the short budget and "
        f"{plan.controls} controls spread over the rest of the ranking) re-trained for "
        f"{plan.epochs} epochs with {plan.seeds} seed(s) each, never pruned"
        f"{html.escape(f' ({sets})') if sets else ''}.</p>"
    )
    out.add(f"<p>{html.escape(' '.join(holds_sentences(c, points=o.ceiling == 1.0)))}</p>")
    header = ["short rank", "role", f"short {c.metric}", f"long {c.metric}", "95 % CI", "seeds"]
    rows = [
        (
            r.candidate.rank,
            r.candidate.role,
            r.candidate.short,
            r.mean,
            f"{r.low:.4g} .. {r.high:.4g}",
            f"{len(r.values)}" + (f" ({r.failed} failed)" if r.failed else ""),
        )
        for r in c.configs
    ]
    out.add(_table(header, rows))
    if c.proxies:
        out.add(
            f"<p>Label-free scores as the search measured them, against the long-run "
            f"{html.escape(c.labelled or '')}: would selecting by them have chosen as well?</p>"
        )
        header = [
            "label-free",
            "configurations",
            "Spearman",
            "chosen (short rank)",
            "below the long-run best",
            "gain over the labelled choice",
        ]
        by_key = {r.candidate.key: r.candidate.rank for r in c.configs}
        rows = [
            (p.metric, p.n, p.spearman, by_key.get(p.picked), p.lost, p.vs_labelled)
            for p in c.proxies
        ]
        out.add(_table(header, rows))
    out.add(
        "<p>The ablation table (mean ± std over seeds): <code>ablation.md</code>, "
        "<code>ablation.tex</code>, <code>ablation.csv</code>; every long run: "
        "<code>confirm.parquet</code>.</p>"
    )


def _compute(out: _Report, o: Outcome, top: int) -> None:
    spent = o.spent
    out.add("<h2>Compute</h2>")
    rows = [
        ("trials counted against the budget", spent.trials),
        ("trial-epochs used", spent.trial_epochs),
        ("trial-epochs without pruning", spent.full_epochs),
        ("saved by pruning", f"{100 * spent.saved:.0f} %"),
        ("wall time (first start to last end)", f"{o.wall_s / 60:.1f} min"),
        ("trial time (training + probes)", f"{spent.trial_time_s / 60:.1f} min"),
    ]
    out.add(_table(["figure", "value"], rows))


#: The report's sections, in order: each ``(report, outcome, top) -> None``.
_SECTIONS = (
    _summary,
    _importance,
    _sweeps,
    _learning_curves,
    _top_trials,
    _pareto,
    _agreement,
    _fidelity,
    _confirm,
    _compute,
)


def _short(name: str) -> str:
    return name.removeprefix("param/")


def _answer(o: Outcome) -> str:
    """One sentence answering the space's question."""
    objectives = o.spec.study.objectives
    if len(objectives) > 1:
        front = o.study.best_trials
        return (
            f"{len(front)} trials are Pareto-optimal for "
            + " vs ".join(x.metric for x in objectives)
            + ": "
            + ", ".join(
                f"trial {t.number} ({', '.join(_fmt(v) for v in t.values)})" for t in front[:6]
            )
            + "."
        )
    grid = [p.name for p in o.spec.params if p.kind == "grid"]
    if grid:
        x = grid[0]
        points = sweep(o.ranked, param=f"param/{x}", metric="value")
        if points:
            pick = max if o.direction == "maximize" else min
            best = pick(points, key=lambda p: p.mean)
            return (
                f"{x} = {_fmt(best.x)} gives the best mean {o.metric}, "
                f"{_fmt(best.mean)} (95 % interval {_fmt(best.low)} to {_fmt(best.high)}, "
                f"{best.n} seeds)."
            )
    return " ".join(o.answer())


_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
.question { color: #555; font-style: italic; }
.warnings { background: #fff6e5; border: 1px solid #f0c36d; border-radius: 6px;
            padding: 0.2em 1em; margin: 0.6em 0; }
.summary { background: #f5f8fb; border: 1px solid #d6e2ee; border-radius: 6px;
           padding: 0.2em 1em 0.6em; }
pre { background: #fff; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
figcaption { font-size: 0.8em; color: #666; }
@media print { body { max-width: none; margin: 0; } figure, table { break-inside: avoid; } }
"""

# Records script errors and whether every figure decoded, for readers and for the browser test.
_CHECK = """
window.addEventListener("error", function (e) {
  var seen = document.body.getAttribute("data-errors") || "";
  document.body.setAttribute("data-errors", seen + e.message + ";");
});
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-figures", ok + "/" + imgs.length);
});
"""


def _page(title: str, body: str, figures: int) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} — sslsearch report</title>"
        f"<style>{_CSS}</style><script>{_CHECK}</script></head>"
        f'<body data-expected-figures="{figures}">{body}'
        f'<p class="question">Written by sslsearch on {dt.datetime.now():%Y-%m-%d %H:%M}.</p>'
        "</body></html>\n"
    )
