"""What early stopping buys: the same answer for less compute, side by side with Ray Tune's recipe.

On one space, trial budget and probe cadence, for every sampler seed, four
methods run one after the other (their order rotates with the seed, so that
drift in the machine's speed hits all of them):

- ``none``: sslsearch without early stopping (the space with ``pruner: none``);
- ``sslsearch``: sslsearch as the space ships it (its pruner, or ``--pruner``);
- ``ray_asha``: Ray Tune's standard recipe on the same training loop:
  ``ray.tune.search.optuna.OptunaSearch`` (the space's sampler, seeded) with
  ``ray.tune.schedulers.ASHAScheduler`` at its defaults (grace period 1,
  reduction factor 4) counting epochs, the same concurrency; the trainable
  reports the probed epochs only, each with its checkpoint (OptunaSearch
  needs the metric in every result);
- ``optuna``: plain Optuna in this process, no Ray: the trainer's epochs in
  the objective, ``trial.report`` and ``trial.should_prune`` after each
  probe, the same sampler and pruner as ``sslsearch``, as many trials at a
  time as the space's concurrency (``study.optimize(n_jobs=...)``: threads,
  one torch thread each, as Ray gives each trial one core). The threads
  share torch's global random generator, so a configuration's score may
  differ from run to run here, not under Ray (one process per trial).

Each trial is charged the epochs it trained. The **anytime curve** of a run
is the best final score (a trial that trained its whole budget) against the
cumulative trial-epochs of the trials started so far, in the order they
started; the **target** is the ``none`` run's best final score minus one
point (0.01), per seed; a method's **cost to target** is the cumulative
trial-epochs when a trial reaching the target finishes, and its wall time
the seconds from the run's start until then (never reached: infinite).
Printed per method: the medians over seeds of the cost and wall time to
target, of the final best and of the points lost against ``none``; the
anytime curves go to ``--out`` as a figure and a CSV. The last lines are
``RESULT name=value``: ``trial_epochs_ratio_vs_none`` and
``trial_epochs_ratio_vs_ray_asha`` (sslsearch's median cost to target over
the other's) and ``best_loss_points`` (the median over seeds of ``none``'s
best minus sslsearch's, in points). Goals: <= 0.30, <= 0.7 and <= 1. And
``least_ratio_vs_none``: the floor under the first ratio on these curves, the
cost if every trial before ``none``'s first hit had stopped at its first
probe (any pruner's best on that sampler path), over ``none``'s cost.

    python bench/efficiency.py [--space spaces/default.yaml] [--trials 10] [--epochs 15]
        [--every 3] [--seeds 0 1 2 3 4] [--pruner JSON] [--methods ...] [--out DIR] [--quick]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from analysis.rundir import RunDir
from search import run_search
from spaces import load_spec, parse_spec
from spaces.compile import define_by_run, trial_config
from spaces.model import SearchSpec
from spaces.study import build_pruner, build_sampler

METHODS = ("none", "sslsearch", "ray_asha", "optuna")
POINT = 0.01


@dataclass(frozen=True)
class Ran:
    """One trial as the curves see it: when it ran, how long, and its final score."""

    start: float  # seconds after the run's start
    end: float
    epochs: int
    final: float | None  # the objective after the whole budget; None when stopped early


def _seeded(spec: SearchSpec, seed: int, pruner: dict[str, Any] | None) -> SearchSpec:
    data = spec.to_dict()
    data["study"]["sampler"]["seed"] = seed
    if pruner is not None:
        data["study"]["pruner"] = pruner
    return parse_spec(data, source=spec.source)


def run_sslsearch(spec: SearchSpec, out: Path) -> list[Ran]:
    """The run through sslsearch (Ray Tune + the Optuna bridge and pruner)."""
    t0 = time.time()
    run_search(spec, out=out, num_cpus=2, verbose=False)
    study = RunDir(out).open_study()
    runs = []
    for t in study.trials:
        if t.datetime_start is None or t.datetime_complete is None:
            continue
        epochs = max(t.intermediate_values, default=0)
        done = t.state == optuna.trial.TrialState.COMPLETE and epochs >= spec.budget.epochs
        runs.append(
            Ran(
                start=t.datetime_start.timestamp() - t0,
                end=t.datetime_complete.timestamp() - t0,
                epochs=epochs,
                final=float(t.value) if done else None,
            )
        )
    return runs


class _Space:
    """The space as OptunaSearch's define-by-run function (picklable: Tune saves its searcher)."""

    def __init__(self, spec: SearchSpec) -> None:
        self.spec = spec

    def __call__(self, trial: Any) -> None:
        define_by_run(self.spec)(trial)  # the parameters it suggests become the (flat) config


def run_ray_asha(spec: SearchSpec, out: Path) -> list[Ran]:
    """Ray Tune's own recipe: OptunaSearch + ASHAScheduler (defaults) on the same trainable."""
    import torch
    from ray import tune
    from ray.tune import Callback
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.utils.util import flatten_dict

    from trainables.data import load_dataset
    from trainables.loop import Trainer, run_epochs
    from trainables.validate import parse_trial_config

    objective = spec.objective
    metric, mode = objective.metric, "max" if objective.direction == "maximize" else "min"

    def trainable(config: dict[str, Any], dataset: Any = None) -> None:
        # OptunaSearch needs the metric in every result: report the probed epochs only,
        # each with its checkpoint as sslsearch's trainable does; ASHA counts epochs
        cfg = parse_trial_config(trial_config(spec, flatten_dict(config, delimiter="/")))
        torch.set_num_threads(1)
        trainer = Trainer(cfg, dataset)
        for metrics in run_epochs(trainer):
            if metric in metrics:
                with tempfile.TemporaryDirectory() as directory:
                    trainer.save(directory)
                    checkpoint = tune.Checkpoint.from_directory(directory)
                    tune.report(metrics, checkpoint=checkpoint)

    class Timeline(Callback):
        def __init__(self) -> None:
            self.t0 = time.time()
            self.rows: dict[str, dict[str, Any]] = {}

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.rows[trial.trial_id] = {"start": time.time() - self.t0, "epochs": 0}

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
            row = self.rows[trial.trial_id]
            row["epochs"] = int(result["epoch"])
            row["value"] = result.get(metric, row.get("value"))

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any):
            self.rows[trial.trial_id]["end"] = time.time() - self.t0

        on_trial_error = on_trial_complete

    timeline = Timeline()
    options = dict(spec.study.sampler.options)
    searcher = OptunaSearch(
        space=_Space(spec),
        metric=metric,
        mode=mode,
        sampler=build_sampler(spec.study.sampler.name, options),
    )
    dataset = load_dataset(parse_trial_config(trial_config(spec, {})).data)
    tuner = tune.Tuner(
        tune.with_resources(
            tune.with_parameters(trainable, dataset=dataset),
            {"cpu": spec.budget.cpu, "gpu": spec.budget.gpu},
        ),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=ASHAScheduler(
                time_attr="epoch",
                metric=metric,
                mode=mode,
                max_t=spec.budget.epochs,
            ),
            num_samples=spec.budget.trials,
            max_concurrent_trials=spec.budget.concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="ray_asha", storage_path=str(out.resolve()), verbose=0, callbacks=[timeline]
        ),
    )
    tuner.fit()
    return [
        Ran(
            start=r["start"],
            end=r.get("end", r["start"]),
            epochs=r["epochs"],
            final=float(r["value"]) if r["epochs"] >= spec.budget.epochs else None,
        )
        for r in sorted(timeline.rows.values(), key=lambda r: r["start"])
    ]


def run_optuna(spec: SearchSpec, out: Path) -> list[Ran]:
    """Plain Optuna in one process: the same sampler and pruner, no Ray."""
    import torch

    from trainables.data import load_dataset
    from trainables.loop import Trainer, run_epochs
    from trainables.validate import parse_trial_config

    torch.set_num_threads(1)  # one core per trial, as under Ray; n_jobs trials at a time
    metric = spec.objective.metric
    sample = define_by_run(spec)
    t0 = time.time()
    dataset = load_dataset(parse_trial_config(trial_config(spec, {})).data)
    runs: list[Ran] = []

    def objective(trial: optuna.Trial) -> float:
        start = time.time() - t0
        trainer = Trainer(parse_trial_config(sample(trial)), dataset)
        epochs, value, pruned = 0, math.nan, False
        for metrics in run_epochs(trainer):
            epochs = int(metrics["epoch"])
            if metric in metrics:
                value = float(metrics[metric])
                trial.report(value, epochs)
                if trial.should_prune():
                    pruned = True
                    break
        runs.append(Ran(start, time.time() - t0, epochs, None if pruned else value))
        if pruned:
            raise optuna.TrialPruned()
        return value

    study = optuna.create_study(
        direction=spec.objective.direction,
        sampler=build_sampler(spec.study.sampler.name, dict(spec.study.sampler.options)),
        pruner=build_pruner(spec.study.pruner.name, dict(spec.study.pruner.options)),
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=spec.budget.trials, n_jobs=spec.budget.concurrency)
    return runs


RUNNERS = {
    "none": run_sslsearch,
    "sslsearch": run_sslsearch,
    "ray_asha": run_ray_asha,
    "optuna": run_optuna,
}


def _better(maximize: bool):
    return (lambda a, b: a > b) if maximize else (lambda a, b: a < b)


def best(runs: list[Ran], *, maximize: bool) -> float:
    """The best final score of a run (NaN when no trial trained its whole budget)."""
    finals = [r.final for r in runs if r.final is not None and not math.isnan(r.final)]
    if not finals:
        return math.nan
    return max(finals) if maximize else min(finals)


def anytime(runs: list[Ran], *, maximize: bool) -> list[tuple[int, float]]:
    """``(cumulative trial-epochs, best final so far)`` after each trial, in start order."""
    better = _better(maximize)
    out, spent, top = [], 0, math.nan
    for r in sorted(runs, key=lambda r: r.start):
        spent += r.epochs
        final = math.nan if r.final is None else r.final
        if not math.isnan(final) and (math.isnan(top) or better(final, top)):
            top = final
        out.append((spent, top))
    return out


def _reaches(r: Ran, target: float, *, maximize: bool) -> bool:
    return r.final is not None and (r.final >= target if maximize else r.final <= target)


def cost_to(runs: list[Ran], target: float, *, maximize: bool) -> tuple[float, float]:
    """Trial-epochs and wall seconds until a trial reached ``target`` (inf: never)."""
    reached = [r for r in runs if _reaches(r, target, maximize=maximize)]
    if not reached:
        return math.inf, math.inf
    first = min(reached, key=lambda r: r.start)
    epochs = sum(r.epochs for r in runs if r.start <= first.start)
    return float(epochs), min(r.end for r in reached)


def least_cost(runs: list[Ran], target: float, *, maximize: bool, first_probe: int) -> float:
    """The least any pruner could pay on this run's sampler path: every trial started
    before the first that reached ``target`` stopped at its first probe, that one
    trained whole (inf: none reached it). A bound on what early stopping can save
    wherever pruning does not change which configurations the sampler tries first."""
    reached = [r for r in runs if _reaches(r, target, maximize=maximize)]
    if not reached:
        return math.inf
    first = min(reached, key=lambda r: r.start)
    before = (r for r in runs if r is not first and r.start <= first.start)
    return float(first.epochs + sum(min(first_probe, r.epochs) for r in before))


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _ratio(a: float, b: float) -> float:
    if math.isinf(a) and math.isinf(b):
        return math.nan
    return a / b if b else math.nan


def summarise(
    results: dict[str, dict[int, list[Ran]]], *, maximize: bool, first_probe: int = 1
) -> dict[str, dict[str, float]]:
    """Per method, the medians over seeds that the table and the RESULT lines print;
    ``none`` also gets ``least_to_target``, the median of :func:`least_cost` on its
    runs with pruning decided first at ``first_probe`` epochs."""
    sign = 1 if maximize else -1
    out: dict[str, dict[str, float]] = {}
    seeds = sorted(results["none"])
    none = [best(results["none"][s], maximize=maximize) for s in seeds]
    targets = {s: n - sign * POINT for s, n in zip(seeds, none, strict=True)}
    for method, by_seed in results.items():
        costs = [cost_to(by_seed[s], targets[s], maximize=maximize) for s in seeds]
        bests = [best(by_seed[s], maximize=maximize) for s in seeds]
        out[method] = {
            "epochs_to_target": _median([c[0] for c in costs]),
            "wall_to_target": _median([c[1] for c in costs]),
            "reached": float(sum(not math.isinf(c[0]) for c in costs)),
            "trial_epochs": _median([float(sum(r.epochs for r in by_seed[s])) for s in seeds]),
            "best": _median(bests),
            "loss_points": _median(
                [sign * (n - b) / POINT for n, b in zip(none, bests, strict=True)]
            ),
        }
    least = [
        least_cost(results["none"][s], targets[s], maximize=maximize, first_probe=first_probe)
        for s in seeds
    ]
    out["none"]["least_to_target"] = _median(least)
    return out


def write_curves(results: dict[str, dict[int, list[Ran]]], out: Path, *, maximize: bool) -> None:
    """The anytime curves as ``efficiency_curves.csv`` and ``efficiency.png`` under ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    sign = 1 if maximize else -1
    seeds = sorted(results["none"])
    reference = {s: best(results["none"][s], maximize=maximize) for s in seeds}
    curves = {
        (method, s): anytime(by_seed[s], maximize=maximize)
        for method, by_seed in results.items()
        for s in seeds
    }
    with open(out / "efficiency_curves.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["method", "seed", "trial_epochs", "best_so_far", "points_below_none"])
        for (method, s), curve in curves.items():
            for spent, top in curve:
                below = sign * (reference[s] - top) / POINT
                writer.writerow([method, s, spent, f"{top:.6f}", f"{below:.3f}"])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    limit = max(sum(r.epochs for r in runs) for by in results.values() for runs in by.values())
    grid = list(range(0, limit + 1, max(1, limit // 200)))
    for method in results:
        below = []
        for x in grid:
            at = []
            for s in seeds:
                tops = [t for spent, t in curves[method, s] if spent <= x]
                top = tops[-1] if tops else math.nan
                at.append(math.inf if math.isnan(top) else sign * (reference[s] - top) / POINT)
            below.append(statistics.median(at))
        ax.step(grid, [min(b, 30.0) for b in below], where="post", label=method)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("cumulative trial-epochs")
    ax.set_ylabel("points below the best without early stopping\n(median over seeds)")
    ax.set_ylim(-2, 30)
    ax.set_title(f"Anytime curves, {len(seeds)} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "efficiency.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="spaces/default.yaml")
    # the README's table: under default.yaml's horizon (60) a trial is a long run's first
    # 15 epochs, ranked by then (the kNN dip of high rates, epochs ~3-9, behind it), with
    # the shipped pruner's decisions at epochs 9 and 12; 4 methods x 5 seeds in 30 minutes
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=int, default=3, help="probe (and pruning) interval")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--pruner", type=json.loads, help="sslsearch's pruner, as JSON")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument(
        "--also",
        nargs="+",
        default=[],
        metavar="NAME=JSON",
        help="more sslsearch runs, each with this pruner (to compare candidates)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    parser.add_argument("--quick", action="store_true", help="6 trials x 4 epochs, 2 seeds")
    args = parser.parse_args()
    if args.quick:  # what is given explicitly stays
        given = set(sys.argv)
        for flag, value in [("--trials", 6), ("--epochs", 4), ("--every", 1), ("--seeds", [0, 1])]:
            if flag not in given:
                setattr(args, flag[2:], value)
    spec = load_spec(
        args.space,
        overrides={
            "budget.trials": args.trials,
            "budget.epochs": args.epochs,
            "probe.every": args.every,
            "budget.noise_seeds": 0,
        },
    )
    maximize = spec.objective.direction == "maximize"
    pruner = args.pruner or {"name": spec.study.pruner.name, **dict(spec.study.pruner.options)}
    methods = list(dict.fromkeys(["none", *args.methods]))
    pruners = {m: pruner for m in methods if m != "none"}
    pruners["none"] = {"name": "none"}
    for item in args.also:
        name, _, options = item.partition("=")
        pruners[name] = json.loads(options)
        methods.append(name)
    import ray

    # started once, outside the timings (run_search and the Tuner attach to it)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    print(
        f"{args.space}: {args.trials} trials x {args.epochs} epochs, probe every {args.every}, "
        f"seeds {args.seeds}; sslsearch's pruner {json.dumps(pruner)}",
        flush=True,
    )
    results: dict[str, dict[int, list[Ran]]] = {m: {} for m in methods}
    root = Path(tempfile.mkdtemp(prefix="bench-efficiency-"))
    began = time.perf_counter()
    try:
        for i, seed in enumerate(args.seeds):
            order = methods[i % len(methods) :] + methods[: i % len(methods)]
            for method in order:
                seeded = _seeded(spec, seed, pruners[method])
                start = time.perf_counter()
                runs = RUNNERS.get(method, run_sslsearch)(seeded, root / f"{method}-{seed}")
                results[method][seed] = runs
                print(
                    f"seed {seed} {method:<10} trial-epochs {sum(r.epochs for r in runs):4d}  "
                    f"stopped {sum(r.final is None for r in runs):2d}/{len(runs)}  "
                    f"wall {time.perf_counter() - start:6.1f} s  "
                    f"best {best(runs, maximize=maximize):.4f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results, args, maximize=maximize)
    print(f"RESULT minutes={(time.perf_counter() - began) / 60:.1f}")


def report(results: dict[str, dict[int, list[Ran]]], args: Any, *, maximize: bool) -> None:
    summary = summarise(results, maximize=maximize, first_probe=args.every)
    n = len(args.seeds)
    print(
        f"\nmedians over {n} seeds; target: the best without early stopping minus 1 point\n"
        f"{'method':<10} {'to target: trial-epochs':>24} {'wall s':>7} {'reached':>8} "
        f"{'all trial-epochs':>17} {'best':>7} {'loss (points)':>14}"
    )
    for method, m in summary.items():
        print(
            f"{method:<10} {m['epochs_to_target']:24.0f} {m['wall_to_target']:7.1f} "
            f"{m['reached']:5.0f}/{n:<2} {m['trial_epochs']:17.0f} {m['best']:7.4f} "
            f"{m['loss_points']:+14.2f}"
        )
    write_curves(results, args.out, maximize=maximize)
    print(f"anytime curves: {args.out / 'efficiency.png'}, {args.out / 'efficiency_curves.csv'}")
    # the floor any pruner faces on none's sampler path (see least_cost)
    print(
        f"RESULT least_ratio_vs_none="
        f"{_ratio(summary['none']['least_to_target'], summary['none']['epochs_to_target']):.3f}"
    )
    ours = summary.get("sslsearch")
    if ours is None:
        return
    print(
        f"RESULT trial_epochs_ratio_vs_none="
        f"{_ratio(ours['epochs_to_target'], summary['none']['epochs_to_target']):.3f}"
    )
    if "ray_asha" in summary:
        print(
            f"RESULT trial_epochs_ratio_vs_ray_asha="
            f"{_ratio(ours['epochs_to_target'], summary['ray_asha']['epochs_to_target']):.3f}"
        )
    if "optuna" in summary:
        print(
            f"RESULT trial_epochs_ratio_vs_optuna="
            f"{_ratio(ours['epochs_to_target'], summary['optuna']['epochs_to_target']):.3f}"
        )
    print(f"RESULT best_loss_points={ours['loss_points']:.2f}")


if __name__ == "__main__":
    main()
