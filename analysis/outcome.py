"""One digest of a run: what the summary and the report both render.

:func:`digest` reads a run directory once (its spec, study, tables and
baseline) into an :class:`Outcome`: the trials ranked by the primary
objective, the best one and its sampled settings, the baselines (random-init
encoder, raw pixels),
what was spent, and (computed on first use) the importances and the
label-free agreements. :mod:`analysis.summary` renders it as console text and
:mod:`analysis.report` as HTML; neither recomputes a fact the other has.
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from analysis.ablation import confirmation
from analysis.agreement import Agreement, all_agreements
from analysis.confirm import config_key
from analysis.effects import Effect, effects
from analysis.evidence import Evidence, gather
from analysis.holds import Confirmation
from analysis.importance import Importance, param_importance
from analysis.noise import NoiseFloor, noise_floor
from analysis.rundir import RunDir
from trainables.errors import InputError

if TYPE_CHECKING:
    import optuna

    from spaces import SearchSpec

__all__ = ["BASELINE_LABELS", "Outcome", "Spent", "caveats", "digest"]

#: Each baseline's name in the summary and the report.
BASELINE_LABELS = {"random_init": "random-init encoder", "raw_input": "raw pixels"}

#: Optuna's importance evaluators, in the order shown; the answer names the first's
#: top 2. fANOVA decomposes the variance over every trial of the evidence; PED-ANOVA
#: contrasts the top 10 % with the rest, which at 40 trials is the best 4 alone: on
#: the planted runs it put a distractor second where fANOVA found the truth.
IMPORTANCE_EVALUATORS = ("fanova", "ped_anova")


@dataclass(frozen=True)
class Spent:
    """What a run cost.

    Attributes:
        trials: trials counted against the budget (interrupted ones re-ran, not counted).
        states: trials per final state (COMPLETE, PRUNED, FAIL).
        trial_epochs: epochs trained, over every trial.
        full_epochs: what every counted trial at full length would have trained.
        trial_time_s: time inside trials (training and probes), as the trials report it.
        tune_time_s: Tune's time of each trial (its last curve row), summed.
        probe_time_s: of which probes (None when the trials do not report it).
    """

    trials: int
    states: dict[str, int]
    trial_epochs: int
    full_epochs: int
    trial_time_s: float
    tune_time_s: float
    probe_time_s: float | None

    @property
    def saved(self) -> float:
        """The share of trial-epochs early stopping saved."""
        return 1 - self.trial_epochs / self.full_epochs if self.full_epochs else 0.0


@dataclass(frozen=True)
class Outcome:
    """A run, digested once.

    Attributes:
        run: the run directory.
        spec: its resolved spec.
        trials: ``trials.parquet`` rows.
        curves: ``curves.parquet`` rows.
        ranked: completed trials with a value, best first by the primary objective.
        params: the ``param/<name>`` columns.
        baselines: the probes on what every trial should beat, by baseline
            (``random_init``: the encoder at initialisation; ``raw_input``: the pixels).
        spent: what the run cost.
    """

    run: RunDir
    spec: SearchSpec
    trials: list[dict[str, Any]]
    curves: list[dict[str, Any]]
    ranked: list[dict[str, Any]]
    params: list[str]
    baselines: dict[str, dict[str, float]]
    spent: Spent

    @property
    def metric(self) -> str:
        return self.spec.objective.metric

    @property
    def direction(self) -> str:
        return self.spec.objective.direction

    @property
    def best(self) -> dict[str, Any] | None:
        return self.ranked[0] if self.ranked else None

    @property
    def sampled(self) -> list[str]:
        """The sampled parameters' names (fixed ones are settings, not findings)."""
        return [p.name for p in self.spec.sampled]

    @property
    def shown_params(self) -> list[str]:
        """The ``param/`` columns of sampled parameters."""
        return [p for p in self.params if p.removeprefix("param/") in self.sampled]

    def baseline_values(self, metric: str) -> dict[str, float]:
        """Each baseline's value of ``metric``, by its label (those that measured it)."""
        return {
            BASELINE_LABELS.get(name, name): values[metric]
            for name, values in self.baselines.items()
            if isinstance(values.get(metric), int | float)
        }

    def best_settings(self, *, sampled_only: bool = True) -> dict[str, Any]:
        """The best trial's values, by parameter name (None values left out)."""
        best = self.best or {}
        names = self.shown_params if sampled_only else self.params
        return {p.removeprefix("param/"): best[p] for p in names if best.get(p) is not None}

    def pbt_schedule(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        """Under PBT: how the trial's parameters changed (epoch, cloned trial, values)."""
        return json.loads(row.get("pbt_schedule") or "[]")

    @property
    def interrupted(self) -> int:
        """Trials that were interrupted and re-run."""
        return sum(1 for r in self.trials if r.get("resumed_from") is not None)

    def config_key(self, row: dict[str, Any]) -> str | None:
        """A trial row's configuration: :func:`~analysis.confirm.config_key` of its
        sampled parameters, as confirm groups trials (None: it never sampled any).
        Its seed is not part of it, a fixed ``train/seed`` included."""
        params = {n: row.get(f"param/{n}") for n in self.sampled}
        params = {n: v for n, v in params.items() if v is not None}
        return config_key(params) if params else None

    def configs(self, rows: list[dict[str, Any]]) -> int:
        """How many configurations ``rows`` hold."""
        return len({self.config_key(r) for r in rows})

    @functools.cached_property
    def best_config_runs(self) -> list[dict[str, Any]]:
        """The completed trials of the best trial's configuration (its other seeds
        too), ranked; empty when nothing completed."""
        best = self.best
        key = self.config_key(best) if best is not None else None
        if key is None:
            return [best] if best is not None else []
        return [r for r in self.ranked if self.config_key(r) == key]

    def best_runs(self) -> str | None:
        """When the best trial's configuration completed more than once (on other
        seeds), its spread: a best trial may be its configuration's luckiest seed."""
        runs = self.best_config_runs
        if len(runs) < 2:
            return None
        values = [r["value"] for r in runs]
        seeds = ", ".join(str(r.get("seed")) for r in sorted(runs, key=lambda r: r["number"]))
        return (
            f"its configuration completed {len(runs)} times (seeds {seeds}): {self.metric} "
            f"mean {statistics.fmean(values):.4g}, {min(values):.4g} .. {max(values):.4g}"
        )

    @property
    def repeated(self) -> int:
        """Trials that ran a configuration an earlier trial had run (a sampler may
        propose one again; ``budget.repeated_config`` gives it another seed), a
        re-run after an interruption apart."""
        seen: set[str] = set()
        count = 0
        for r in sorted(self.trials, key=lambda r: r["number"]):
            key = self.config_key(r)
            if key is None or r.get("resumed_from") is not None:
                continue
            count += key in seen
            seen.add(key)
        return count

    @functools.cached_property
    def study(self) -> optuna.Study:
        """The run's Optuna study (opened on first use: the summary needs only the tables)."""
        return self.run.open_study()

    @functools.cached_property
    def wall_s(self) -> float:
        """First trial start to last trial end, from the study."""
        ended = [t for t in self.study.trials if t.datetime_start and t.datetime_complete]
        if not ended:
            return 0.0
        first = min(t.datetime_start for t in ended)
        return (max(t.datetime_complete for t in ended) - first).total_seconds()

    @functools.cached_property
    def noise(self) -> NoiseFloor | None:
        """The noise floor: the best configuration re-run with other seeds (None: not
        measured, or the study is not at hand)."""
        try:
            self.study  # noqa: B018 - the run's own study, or InputError
            noise = self.run.side_study("noise")
        except InputError:
            return None
        if noise is None:
            return None
        reruns = noise.get_trials(deepcopy=False)
        values = {r["number"]: r["value"] for r in self.ranked}
        return noise_floor(reruns, values, prefer=self.best["number"] if self.best else None)

    @property
    def band(self) -> float | None:
        """How far apart two runs of one configuration fall at 95 % (None: unmeasured)."""
        return self.noise.band if self.noise is not None else None

    @property
    def tied(self) -> list[dict[str, Any]]:
        """The completed trials the ranking cannot tell from the best, the best first:
        within :attr:`band` of it, or (noise unmeasured) equal to it."""
        if not self.ranked:
            return []
        best = self.ranked[0]["value"]
        margin = self.band if self.band is not None else 1e-9 * max(1.0, abs(best))
        return [r for r in self.ranked if abs(r["value"] - best) <= margin]

    @property
    def ceiling(self) -> float | None:
        """The best value the objective can take (an accuracy's 1.0), if its probe says."""
        return (self.run.metrics().get(self.metric) or {}).get("ceiling")

    @functools.cached_property
    def evidence(self) -> Evidence:
        """Every trial's primary objective at the evidence epoch, pruned trials included."""
        return gather(self.study.trials, self.curves, metric=self.metric, direction=self.direction)

    @functools.cached_property
    def importances(self) -> list[Importance]:
        """Optuna's evaluators on the evidence (every trial at the evidence epoch)."""
        study = self.evidence.study()
        return [param_importance(study, evaluator=e) for e in IMPORTANCE_EVALUATORS]

    @functools.cached_property
    def effects(self) -> list[Effect]:
        """Each sampled parameter's effect on the evidence, with its 95 % interval."""
        return effects(self.evidence, params=self.sampled)

    def findings(self, k: int = 3) -> list[str]:
        """The answer's sentences: the ``k`` most important parameters' effects, in
        importance order (then any other effect the data determines)."""
        order = [n for imp in self.importances for n in imp.values]
        order = list(dict.fromkeys(order[:k] + [e.param for e in self.effects]))
        by_param: dict[str, list[Effect]] = {}
        for e in self.effects:
            by_param.setdefault(e.param, []).append(e)
        out = []
        for i, name in enumerate(order):
            for e in by_param.get(name, []):
                if i < k or e.determined:
                    out.append(e.sentence(self.metric))
        return out

    def answer(self) -> list[str]:
        """What mattered most (importance) and which way (:meth:`findings`), as sentences."""
        ranked = next((imp for imp in self.importances if imp.values), None)
        if ranked is None:
            return [f"Too few trials for importances ({self.evidence.describe()})."]
        head = (
            f"What mattered most ({ranked.evaluator}; {self.evidence.describe()}): "
            + ", ".join(f"{n} ({ranked.values[n]:.2f})" for n in ranked.top(2))
            + "."
        )
        return [head] + [f"{sentence}." for sentence in self.findings()]

    def warnings(self) -> list[str]:
        """What limits the answer: few completed trials, a saturated metric, a
        baseline as good as the best."""
        return caveats(self)

    @functools.cached_property
    def confirmation(self) -> Confirmation | None:
        """``sslsearch confirm``'s verdict (None: no long run completed)."""
        return confirmation(self.run)

    @functools.cached_property
    def agreements(self) -> list[Agreement]:
        """Label-free vs labelled agreement over the completed trials."""
        return all_agreements(self.trials, self.run.metrics())


#: A baseline within this share of the best value (relative) is "close to the best".
BASELINE_CLOSE = 0.1
#: Completed trials below which the ranking is flagged.
FEW_COMPLETED = 5


def caveats(o: Outcome) -> list[str]:
    """The warnings :meth:`Outcome.warnings` gives (one sentence each).

    "Close" is judged in noise units where the study measured its noise
    (:attr:`Outcome.band`), else by fixed shares (equal values; 10 %).
    """
    found: list[str] = []
    ranked, metric, band = o.ranked, o.metric, o.band
    if len(ranked) < FEW_COMPLETED:
        found.append(
            f"Only {len(ranked)} trial(s) completed: the best trial rests on few "
            "full-length results."
        )
    if not ranked:
        return found
    best = ranked[0]["value"]
    noise = f"the noise band ({band:.3g})" if band is not None else None
    # a configuration sampled again (other seeds) counts once: its runs tying is no news
    ties, every = o.configs(o.tied), o.configs(ranked)
    what = "trials" if every == len(ranked) else "configurations"
    if ties >= 3 and ties >= 0.2 * every:
        how = f"are within {noise} of" if noise else "tie at"
        found.append(
            f"{ties} of {every} completed {what} {how} the best {metric}, "
            f"{best:.4g}: the metric cannot tell them apart (saturated or too noisy; a "
            "harder probe set or metric would)."
        )
    ceiling = o.ceiling
    if ceiling is not None and abs(ceiling - best) <= (band or 0.0) + 1e-9:
        found.append(
            f"The best {metric}, {best:.4g}, is within "
            + (noise if noise else "rounding")
            + f" of its ceiling, {ceiling:g}: the metric is saturated (or too noisy) "
            "and cannot rank the best trials."
        )
    close = band if band is not None else BASELINE_CLOSE * abs(best)
    found += _baseline_caveats(o, best, close, noise)
    if o.noise is not None and o.noise.failed:
        found.append(
            f"{o.noise.failed} re-run(s) of the best configuration failed: "
            "it is not stable across seeds."
        )
    return found


def _baseline_caveats(o: Outcome, best: float, close: float, noise: str | None) -> list[str]:
    """Each baseline the best trial does not beat clearly; then, when the best
    trial's configuration completed on other seeds too, each baseline that its
    mean does not beat clearly (the best trial may be its luckiest seed)."""
    found: list[str] = []
    sign = 1 if o.direction == "maximize" else -1
    runs = o.best_config_runs
    scores = [(best, "the best trial")]
    if len(runs) > 1:
        mean = statistics.fmean(r["value"] for r in runs)
        scores.append(
            (mean, f"the mean of the best trial's configuration over its {len(runs)} seeds")
        )
    for label, value in o.baseline_values(o.metric).items():
        for score, what in scores:
            gap = sign * (score - value)
            if gap <= 0:
                verdict = f"as good as or better than {what} ({score:.4g})"
                tail = "the search has not beaten it."
            elif gap <= close:
                verdict = f"within {noise or f'{gap:.3g}'} of {what} ({score:.4g})"
                tail = "the search has not beaten it clearly; most of the score needs no training."
            else:
                continue
            found.append(f"The {label} baseline scores {value:.4g}, {verdict}: {tail}")
            break  # the mean is worth a word only where the best trial hid it
    return found


def _spent(trials: list[dict], curves: list[dict], epochs: int) -> Spent:
    counted = [r for r in trials if not (r.get("fail_reason") or "").startswith("interrupted")]
    probe = None
    if curves and "probe_time_s" in curves[0]:
        probe = sum(r["probe_time_s"] or 0.0 for r in curves)
    tune_time: dict[int, float] = {}
    for r in curves:
        tune_time[r["trial"]] = max(tune_time.get(r["trial"], 0.0), r["time_s"] or 0.0)
    return Spent(
        trials=len(counted),
        states={s: sum(r["state"] == s for r in trials) for s in ("COMPLETE", "PRUNED", "FAIL")},
        trial_epochs=sum(r["epochs"] or 0 for r in trials),
        full_epochs=len(counted) * epochs,
        trial_time_s=sum(r.get("final/trial_time_s") or 0.0 for r in trials),
        tune_time_s=sum(tune_time.values()),
        probe_time_s=probe,
    )


def digest(run_dir: str | Path) -> Outcome:
    """Read the run in ``run_dir`` (its tables must exist) into an :class:`Outcome`.

    Example:
        >>> outcome = digest("runs/demo")  # doctest: +SKIP
        >>> outcome.best["number"], outcome.spent.saved  # doctest: +SKIP
        (7, 0.21)
    """
    run = RunDir(run_dir)
    spec = run.spec()
    trials = pq.read_table(run.trials_path).to_pylist()
    curves = pq.read_table(run.curves_path).to_pylist() if run.curves_path.exists() else []
    ranked = [r for r in trials if r["state"] == "COMPLETE" and r["value"] is not None]
    ranked.sort(key=lambda r: r["value"], reverse=spec.objective.direction == "maximize")
    return Outcome(
        run=run,
        spec=spec,
        trials=trials,
        curves=curves,
        ranked=ranked,
        params=[c for c in (trials[0] if trials else {}) if c.startswith("param/")],
        baselines=run.baselines(),
        spent=_spent(trials, curves, spec.budget.epochs),
    )
