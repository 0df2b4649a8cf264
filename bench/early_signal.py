"""Which signal could stop trials early without losing the answer: replays on whole curves.

Early stopping pays only if something seen early ranks the trials as their
final scores will. This trains one study whole, without early stopping (the
space as shipped, its sampler made ``random`` and seeded, every probe at
every epoch, the label-free RankMe added, no noise-floor re-runs), and on
its learning curves measures, for each signal (the objective, RankMe, the
training loss):

1. at each epoch, its Spearman rank correlation with the final objective
   over all trials, and where the trial with the best final score ranks;
2. **replays**: ``--draws`` random draws of ``--n`` of the trials, in a
   random order, trained one at a time, each asked after every
   ``--every``-th epoch (never at the last, as sslsearch's scheduler asks)
   by an Optuna pruner judging that signal: the space's Median without its
   warm-up (its ``n_startup_trials``), successive halving (reduction factor
   4) and Hyperband (3), both from the first probe, and any ``--pruner``.
   A draw's cost to target is what ``bench/efficiency.py`` counts: the
   trial-epochs until a trial within a point of the draw's best trains
   whole; its ratio to no early stopping's, as a median over draws (and
   over the draws whose first hit came after the Median's start-up trials,
   where a pruner could act: ``late hits``), with the share of draws where
   the pruner stopped every trial that would have reached the target
   (``missed``), the mean share of the trial-epochs spent, and the floor
   (``efficiency.least_cost``: every trial before the first hit stopped at
   its first probe).

Sequential replays are early stopping's best case (in a run, trials started
together are judged against fewer finished ones). The last lines are
``RESULT name=value``: ``spearman_<signal>_at_<epoch>`` at the first probe
(sign: +1 when it ranks as the final objective does), and per run size
``n``: ``replay_ratio_<pruner>_<signal>_n<n>``,
``replay_missed_<pruner>_<signal>_n<n>``, ``replay_ratio_floor_n<n>``; then
``minutes``. ``--run DIR`` replays a run this script trained (``--out``)
again, without training. ``--quick``: 8 trials x 6
epochs (a smoke test, one to two minutes).

    python bench/early_signal.py [--space spaces/default.yaml] [--trials 40] [--epochs 15]
        [--every 3] [--n 10 20] [--draws 200] [--seed 0] [--pruner NAME=JSON ...]
        [--out DIR | --run DIR]
        [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pyarrow.parquet as pq
from scipy.stats import spearmanr

from analysis.rundir import RunDir
from search import run_search
from spaces import load_spec, parse_spec
from spaces.model import SearchSpec
from spaces.study import build_pruner

# the cost accounting is efficiency.py's (appended: bench/ shadows nothing importable)
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))
from efficiency import POINT, Ran, cost_to, least_cost

LABEL_FREE = "rankme"
#: replayed on every signal: the space's Median without its warm-up (its start-up
#: trials), successive halving and Hyperband from the first probe (set in ``main``)
DEFAULT_PRUNERS: dict[str, dict[str, Any]] = {
    "median": {"name": "median", "n_warmup_steps": 0},
    "successive_halving": {"name": "successive_halving", "reduction_factor": 4},
    "hyperband": {"name": "hyperband", "reduction_factor": 3},
}
LOSS = "loss"

Curves = dict[int, dict[int, float]]  # trial -> epoch -> value


def curves_of(rows: list[dict], metric: str) -> Curves:
    """``trial -> epoch -> value`` of one metric from ``curves.parquet`` rows (finite only)."""
    out: Curves = {}
    for row in rows:
        value = row.get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            out.setdefault(int(row["trial"]), {})[int(row["epoch"])] = float(value)
    return out


def spearman(xs: list[float], ys: list[float]) -> float:
    """scipy's Spearman rho; NaN under three pairs or without spread (as analysis/curves.py)."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    return float(spearmanr(xs, ys).statistic)


def replay(
    order: list[int],
    signal: Curves,
    final: dict[int, float],
    *,
    direction: str,
    epochs: int,
    every: int,
    pruner: optuna.pruners.BasePruner,
) -> list[Ran]:
    """The trials of ``order``, one at a time, each stopped where ``pruner`` judging
    ``signal`` says.

    ``direction`` is the signal's; the pruner is asked after every ``every``-th epoch
    before the last, as sslsearch's scheduler asks it. A trial that trains all ``epochs``
    is told its ``final`` objective (the pruners compare the signal's curves only).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # named: Hyperband assigns a trial's bracket from a hash of the study's name
    study = optuna.create_study(study_name="replay", direction=direction, pruner=pruner)
    runs = []
    for i, number in enumerate(order):
        trial = study.ask()
        stopped = None
        for epoch in range(every, epochs, every):
            value = signal.get(number, {}).get(epoch)
            if value is None:
                continue
            trial.report(value, epoch)
            if trial.should_prune():
                stopped = epoch
                break
        if stopped is None:
            study.tell(trial, final[number])
            runs.append(Ran(start=i, end=i, epochs=epochs, final=final[number]))
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            runs.append(Ran(start=i, end=i, epochs=stopped, final=None))
    return runs


@dataclass(frozen=True)
class Replayed:
    """A signal's replays: medians over draws of the cost to target over no early
    stopping's (all draws; ``late``: those where no early stopping's first hit came
    after the pruner's startup trials, where pruning could act), the share of draws
    where the target was never reached, and the mean share of the trial-epochs spent."""

    ratio: float
    late: float
    missed: float
    spent: float


def replays(
    signals: dict[str, tuple[Curves, str]],
    pruners: dict[str, dict[str, Any]],
    final: dict[int, float],
    *,
    maximize: bool,
    n: int,
    draws: int,
    epochs: int,
    every: int,
    startup: int,
    seed: int,
) -> dict[str, Replayed]:
    """Per ``pruner/signal``, its :class:`Replayed`; ``floor`` gets :func:`least_cost`'s.

    ``pruners``: name -> a pruner as a space writes it (``{"name": "median", ...}``).
    ``startup``: a draw's hit is late when no early stopping's came after this many trials.
    """
    rng = random.Random(seed)
    numbers = sorted(final)
    pairs = [f"{p}/{s}" for p in pruners for s in signals]
    ratios: dict[str, list[float]] = {name: [] for name in [*pairs, "floor"]}
    late: dict[str, list[float]] = {name: [] for name in ratios}
    spent: dict[str, list[float]] = {name: [] for name in ratios}
    for _ in range(draws):
        order = rng.sample(numbers, min(n, len(numbers)))
        whole = [Ran(start=i, end=i, epochs=epochs, final=final[t]) for i, t in enumerate(order)]
        top = max(final[t] for t in order) if maximize else min(final[t] for t in order)
        target = top - POINT if maximize else top + POINT
        none, _ = cost_to(whole, target, maximize=maximize)
        costs = {
            "floor": (least_cost(whole, target, maximize=maximize, first_probe=every), math.nan)
        }
        for pair in pairs:
            which, signal = pair.split("/")
            curve, direction = signals[signal]
            options = dict(pruners[which])
            pruner = build_pruner(options.pop("name"), options)
            runs = replay(
                order, curve, final, direction=direction, epochs=epochs, every=every, pruner=pruner
            )
            costs[pair] = cost_to(runs, target, maximize=maximize)[0], sum(r.epochs for r in runs)
        for name, (cost, total) in costs.items():
            ratios[name].append(cost / none)
            spent[name].append(total / (epochs * len(order)))
            if none > epochs * startup:
                late[name].append(cost / none)
    return {
        name: Replayed(
            ratio=statistics.median(v),
            late=statistics.median(late[name]) if late[name] else math.nan,
            missed=sum(map(math.isinf, v)) / draws,
            spent=statistics.fmean(spent[name]),
        )
        for name, v in ratios.items()
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="spaces/default.yaml")
    parser.add_argument("--trials", type=int, default=40, help="trials trained whole")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--every", type=int, default=3, help="the replayed pruner's interval")
    parser.add_argument(
        "--n", type=int, nargs="+", default=[10, 20], help="trials per replayed run"
    )
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--pruner",
        nargs="+",
        default=[],
        metavar="NAME=JSON",
        help='more pruners to replay, e.g. wilcoxon=\'{"name": "wilcoxon"}\'',
    )
    parser.add_argument("--out", type=Path, help="keep the study here")
    parser.add_argument("--run", type=Path, help="replay this run (--out earlier) again")
    parser.add_argument("--quick", action="store_true", help="8 trials x 6 epochs")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.every, args.n, args.draws = 8, 6, 2, [6], 50
    return args


def _trained(args: argparse.Namespace, base: SearchSpec) -> tuple[SearchSpec, Path]:
    """The study of the space ``base`` trained whole (or ``--run``'s), and its run directory."""
    if args.run is not None:  # replayed as trained
        spec = RunDir(args.run).spec()
        args.trials, args.epochs = spec.budget.trials, spec.budget.epochs
        print(f"{args.run}: {args.trials} trials x {args.epochs} epochs, replayed")
        return spec, args.run
    names = list(dict.fromkeys([*base.base.get("probe", {}).get("names", ["knn"]), LABEL_FREE]))
    spec = load_spec(
        args.space,
        overrides={
            "budget.trials": args.trials,
            "budget.epochs": args.epochs,
            "budget.noise_seeds": 0,
            "probe.every": 1,
            "probe.names": names,
        },
    )
    data = spec.to_dict()
    data["study"]["sampler"] = {"name": "random", "seed": args.seed}
    data["study"]["pruner"] = {"name": "none"}
    spec = parse_spec(data, source=spec.source)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-early-signal-")) / "run"
    print(f"{args.space}: {args.trials} trials x {args.epochs} epochs, every probe each epoch")
    print(f"-> {out}", flush=True)
    run_search(spec, out=out, num_cpus=2, verbose=False)
    return spec, out


def correlations(
    signals: dict[str, tuple[Curves, str]],
    final: dict[int, float],
    *,
    maximize: bool,
    epochs: int,
) -> dict[int, dict[str, tuple[float, int | None]]]:
    """Per epoch and signal: its Spearman rho with ``final`` (+1: it ranks as the final
    objective does, whatever the two directions) and the final best's rank by it."""
    best = (max if maximize else min)(final, key=final.__getitem__)
    out: dict[int, dict[str, tuple[float, int | None]]] = {}
    for epoch in range(1, epochs + 1):
        for name, (curve, direction) in signals.items():
            have = [t for t in final if epoch in curve.get(t, {})]
            rho = spearman([curve[t][epoch] for t in have], [final[t] for t in have])
            rho = rho if (direction == "maximize") == maximize else -rho
            at = sorted(have, key=lambda t: curve[t][epoch], reverse=direction == "maximize")
            out.setdefault(epoch, {})[name] = (rho, at.index(best) + 1 if best in at else None)
    return out


def _print_replays(results: dict[str, Replayed], n: int, args: argparse.Namespace) -> None:
    print(
        f"\nreplays: {args.draws} draws of {n} trials, each pruner asked every {args.every}"
        " epochs on each signal; cost to target over no early stopping's (late hits: the "
        "draws whose first hit came after the Median's start-up trials)"
    )
    print(
        f"  {'pruner/signal':<30} {'cost ratio':>10} {'(late hits)':>11} {'missed':>7} {'spent':>6}"
    )
    for name, r in results.items():
        print(
            f"  {name:<30} {r.ratio:10.3f} {r.late:11.3f} {100 * r.missed:6.1f}% "
            + (f"{r.spent:6.2f}" if math.isfinite(r.spent) else f"{'-':>6}")
        )


def main() -> None:
    args = _arguments()
    began = time.perf_counter()
    base = load_spec(args.space)
    spec, out = _trained(args, base)
    objective, maximize = spec.objective.metric, spec.objective.direction == "maximize"
    rows = pq.read_table(RunDir(out).curves_path).to_pylist()
    signals = {
        objective: (curves_of(rows, objective), spec.objective.direction),
        LABEL_FREE: (curves_of(rows, LABEL_FREE), RunDir(out).direction(LABEL_FREE)),
        LOSS: (curves_of(rows, LOSS), "minimize"),
    }
    final = {t: c[args.epochs] for t, c in signals[objective][0].items() if args.epochs in c}
    best = (max if maximize else min)(final, key=final.__getitem__)
    print(f"\n{len(final)} trials trained whole; the best, trial {best}: {final[best]:.4f}")
    print(f"{'epoch':>5}  " + "  ".join(f"{s + ' rho (best at)':>24}" for s in signals))
    table = correlations(signals, final, maximize=maximize, epochs=args.epochs)
    for epoch, cells in table.items():
        print(f"{epoch:>5}  " + "  ".join(f"{r:+17.2f} ({k or '-':>3})" for r, k in cells.values()))
    results = [
        f"spearman_{name}_at_{args.every}={rho:.3f}" for name, (rho, _) in table[args.every].items()
    ]
    startup = int(dict(base.study.pruner.options).get("n_startup_trials", 4))
    pruners = {name: dict(options) for name, options in DEFAULT_PRUNERS.items()}
    pruners["median"]["n_startup_trials"] = startup
    pruners["successive_halving"]["min_resource"] = args.every
    pruners["hyperband"].update(min_resource=args.every, max_resource=args.epochs)
    for item in args.pruner:
        name, _, options = item.partition("=")
        pruners[name] = json.loads(options)
    for n in args.n:
        replayed = replays(
            signals,
            pruners,
            final,
            maximize=maximize,
            n=n,
            draws=args.draws,
            epochs=args.epochs,
            every=args.every,
            startup=startup,
            seed=args.seed,
        )
        _print_replays(replayed, n, args)
        for name, r in replayed.items():
            key = name.replace("/", "_")
            results.append(f"replay_ratio_{key}_n{n}={r.ratio:.3f}")
            if name != "floor":
                results.append(f"replay_missed_{key}_n{n}={r.missed:.3f}")
    for line in results:
        print(f"RESULT {line}")
    print(f"RESULT minutes={(time.perf_counter() - began) / 60:.1f}")


if __name__ == "__main__":
    main()
