"""What pruning saves: the same space, seeds and trial count with and without an Optuna pruner.

For every seed the study runs once per pruner (no pruning, Median,
SuccessiveHalving), interleaved, through the full stack (Ray Tune, the Optuna
sampler bridge and pruning scheduler, SQLite storage). Printed per pruner, as
means over the seeds: trial-epochs used, wall time, the best final score, and
the ratios to the unpruned run of the same seed; the last lines are
``RESULT name=value``. Goal: <= 0.30x trial-epochs at <= 1 point loss in the
best score.

    python bench/pruning.py [--space spaces/default.yaml] [--trials 16] [--epochs 12]
                            [--seeds 0 1 2] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from search import run_search
from spaces import parse_spec

#: The pruners compared; ``every`` is the probe interval (the steps pruners see).
PRUNERS = {
    "none": {"name": "none"},
    "median": {"name": "median", "n_startup_trials": 4, "n_warmup_steps": 2},
    "successive_halving": {
        "name": "successive_halving",
        "min_resource": 2,
        "reduction_factor": 3,
        "min_early_stopping_rate": 0,
    },
}


def run_one(data: dict, source: str, pruner: str, seed: int, out: Path) -> dict[str, float]:
    data = copy.deepcopy(data)
    data["study"]["name"] = f"{pruner}-seed{seed}"
    data["study"]["pruner"] = PRUNERS[pruner]
    data["study"]["sampler"]["seed"] = seed
    spec = parse_spec(data, source=source)
    start = time.perf_counter()
    result = run_search(spec, out=out, num_cpus=2, verbose=False)
    wall = time.perf_counter() - start
    rows = pq.read_table(out / "trials.parquet").to_pylist()
    return {
        "trial_epochs": float(sum(r["epochs"] for r in rows)),
        "wall_s": wall,
        "best": float(result.best_value),
        "pruned": float(sum(r["state"] == "PRUNED" for r in rows)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="spaces/default.yaml")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--every", type=int, default=2, help="probe (and pruning) interval")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="4 trials x 4 epochs, one seed")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.seeds = 4, 4, [0]
    data = yaml.safe_load(Path(args.space).read_text(encoding="utf-8"))
    data["budget"].update(trials=args.trials, epochs=args.epochs)
    data.setdefault("probe", {})["every"] = args.every
    data["study"]["sampler"]["n_startup_trials"] = min(
        data["study"]["sampler"].get("n_startup_trials", 6), max(1, args.trials // 3)
    )
    import ray

    # started once, outside the timings (run_search attaches to it)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    results: dict[str, list[dict[str, float]]] = {p: [] for p in PRUNERS}
    root = Path(tempfile.mkdtemp(prefix="bench-pruning-"))
    print(
        f"{args.space}: {args.trials} trials x {args.epochs} epochs, probe every {args.every}, "
        f"seeds {args.seeds}",
        flush=True,
    )
    try:
        for seed in args.seeds:
            order = list(PRUNERS) if seed % 2 == 0 else list(reversed(PRUNERS))
            for pruner in order:  # interleaved: drift in machine speed hits all pruners
                r = run_one(data, args.space, pruner, seed, root / f"{pruner}-{seed}")
                results[pruner].append(r)
                print(
                    f"seed {seed} {pruner:<19} trial-epochs {r['trial_epochs']:5.0f}  "
                    f"pruned {r['pruned']:3.0f}  wall {r['wall_s']:6.1f} s  best {r['best']:.4f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)

    base = results["none"]
    print(
        "\npruner               trial-epochs  ratio   wall s  ratio   best    loss (points)",
        flush=True,
    )
    for pruner, rows in results.items():
        epochs = statistics.mean(r["trial_epochs"] for r in rows)
        wall = statistics.mean(r["wall_s"] for r in rows)
        best = statistics.mean(r["best"] for r in rows)
        pairs = list(zip(rows, base, strict=True))  # the same seed with and without pruning
        e_ratio = statistics.mean(r["trial_epochs"] / b["trial_epochs"] for r, b in pairs)
        w_ratio = statistics.mean(r["wall_s"] / b["wall_s"] for r, b in pairs)
        loss = statistics.mean(100 * (b["best"] - r["best"]) for r, b in pairs)
        print(
            f"{pruner:<20} {epochs:12.1f}  {e_ratio:5.2f}x {wall:7.1f}  {w_ratio:5.2f}x "
            f"{best:.4f}  {loss:+.1f}"
        )
        print(f"RESULT {pruner}_trial_epochs_ratio={e_ratio:.3f}")
        print(f"RESULT {pruner}_wall_ratio={w_ratio:.3f}")
        print(f"RESULT {pruner}_best_loss_points={loss:.2f}")


if __name__ == "__main__":
    main()
