"""Planted truth: does the search find what the data was built to reward?

Runs ``spaces/augmentation_strength.yaml`` on the generated ``shapes`` data,
where the label is the shape and colour (hue within 0.7 of the circle,
saturation, brightness), position and scale are random nuisances. SimCLR's
colour jitter randomises exactly the colour nuisances (grayscale is off, so
nothing else can), and at 16 px a crop soon cuts the shape itself, so the
search should find that colour-jitter strength and crop scale matter most
(the top-2 fANOVA importances; PED-ANOVA is printed too) and that the best
trials use strong colour jitter (mean strength of the top 5 completed trials
above the middle of its range, both on the scale the strength is searched
on: geometric for a log scale). The last lines are ``RESULT name=value``; the
exit status is 0 when the truth was found. Must finish on the CPU in under
20 minutes (17-18 on 2 cores); ``--seed`` checks that a pass is not luck.

    python bench/planted.py [--trials 40] [--epochs 18] [--seed 0] [--out runs/planted]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pyarrow.parquet as pq

from analysis.importance import param_importance
from analysis.report import write_report
from analysis.rundir import open_storage, resolve_storage_url
from search import run_search
from spaces import load_spec

SPACE = Path(__file__).resolve().parent.parent / "spaces" / "augmentation_strength.yaml"
PLANTED = ("aug/color_jitter/strength", "aug/resized_crop/min_scale")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, help="override budget.trials")
    parser.add_argument("--epochs", type=int, help="override budget.epochs")
    parser.add_argument("--seed", type=int, help="override the sampler's seed (is a pass luck?)")
    parser.add_argument("--out", help="keep the run here (default: a temporary directory)")
    args = parser.parse_args()
    overrides = {}
    if args.trials:
        overrides["budget.trials"] = args.trials
    if args.epochs:
        overrides["budget.epochs"] = args.epochs
    if args.seed is not None:
        overrides["study.sampler.seed"] = args.seed
    spec = load_spec(SPACE, overrides=overrides)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="planted-")) / "run"
    print(
        f"{SPACE.name}: {spec.budget.trials} trials x {spec.budget.epochs} epochs on "
        f"{dict(spec.base['data'])} -> {out}",
        flush=True,
    )
    start = time.perf_counter()
    run_search(spec, out=out, num_cpus=2, verbose=True)
    wall = time.perf_counter() - start
    write_report(out)

    storage = open_storage(resolve_storage_url(spec.study.storage, out))
    study = optuna.load_study(study_name=spec.study.name, storage=storage)
    importances = {e: param_importance(study, evaluator=e) for e in ("fanova", "ped_anova")}
    rows = pq.read_table(out / "trials.parquet").to_pylist()
    complete = sorted(
        (r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["value"], reverse=True
    )
    top5 = complete[:5]
    p = next(p for p in spec.params if p.name == "aug/color_jitter/strength")
    # "strong" = above the middle of the range on the scale it is searched on
    # (geometric for a log-scaled strength, as TPE sees it)
    mean = statistics.geometric_mean if p.log else statistics.mean
    strength = mean(r["param/aug/color_jitter/strength"] for r in top5)
    middle = mean([p.low, p.high])
    decisive = importances["fanova"]
    top2_ok = set(decisive.top(2)) == set(PLANTED)
    strong_ok = strength > middle
    print()
    for name, imp in importances.items():
        print(f"{name} ({imp.n_trials} completed trials):")
        for param, value in imp.values.items():
            mark = "  <- planted" if param in PLANTED else ""
            print(f"  {param:<34} {value:.3f}{mark}")
    print(
        f"best 5 trials: knn_top1 {[round(r['value'], 3) for r in top5]}, "
        f"{'geometric ' if p.log else ''}mean colour-jitter strength {strength:.2f} "
        f"(range {p.low}..{p.high}, middle {middle:.2f})"
    )
    print(f"report: {out / 'report.html'}; wall {wall / 60:.1f} min")
    print(f"RESULT wall_min={wall / 60:.1f}")
    print(f"RESULT best_knn_top1={complete[0]['value']:.4f}")
    for name, imp in importances.items():
        print(f"RESULT {name}_top2={','.join(imp.top(2))}")
    print(f"RESULT top5_color_jitter_strength={strength:.3f}")
    print(f"RESULT planted_top2_found={int(top2_ok)}")
    print(f"RESULT strong_color_jitter_found={int(strong_ok)}")
    if not args.out:
        shutil.rmtree(out.parent, ignore_errors=True)
    return 0 if top2_ok and strong_ok else 1


if __name__ == "__main__":
    sys.exit(main())
