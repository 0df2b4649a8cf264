"""Planted truth: does the search find what the data was built to reward?

Runs ``spaces/augmentation_strength.yaml`` unchanged (its successive-halving
pruner active from the first trial) on generated ``shapes`` data, in one of
three cases (``--case``):

- ``shape`` (the space's own data): the label is the shape; colour (hue,
  saturation, brightness), position and scale are random nuisances. SimCLR's
  colour jitter randomises exactly the colour nuisances (grayscale is off), and
  at 16 px a crop soon cuts the shape itself, so colour-jitter strength and
  crop scale must be the two most important parameters and the best trials
  must use strong colour jitter.
- ``colour``: the opposite truth. The label is the hue of the image (the
  dark shape and the background share it): 5 classes packed into 0.15 of the
  hue circle (``hue_range``), each class's band filling its share
  (``hue_spread`` 1: neighbouring classes meet), so strength-1 jitter (+-0.2
  hue) moves an image across several classes while strength 1/16 (+-0.0125)
  stays near its own; the shape, its position and scale, the saturation and
  the brightness are nuisances. Colour-jitter strength must rank first and
  the best trials must use weak colour jitter (one trial each, crop 0.1:
  strength 1/16 reaches kNN 0.89, strength 1 0.75; the random-init encoder
  0.64, the raw pixels 0.58).
- ``colour-easy``: the same with the classes in 0.25 of the circle, each band
  0.7 of its share (gaps between the classes): a near-saturated task
  (strength 1/16: 0.99, strength 1: 0.87 at crop 0.3; random-init 0.77, raw
  pixels 0.72), where the differences are small and the answer must still be
  right.

Importances are the run's own answer (``analysis.outcome.digest``: every trial,
pruned ones included, at the evidence epoch; fANOVA decides, PED-ANOVA is
printed too); "strong" and "weak" compare the mean strength of the 5 best
completed trials with the middle of the range on the scale it is searched on
(geometric for a log scale). The last lines are ``RESULT name=value``; the exit
status is 0 when the truth was found
and pruning saved at least 30 % of the trial-epochs. About 10 minutes on 2 CPU cores.

    python bench/planted.py [--case shape|colour|colour-easy] [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from analysis.outcome import digest
from analysis.report import write_report
from search import run_search
from spaces import load_spec

SPACE = Path(__file__).resolve().parent.parent / "spaces" / "augmentation_strength.yaml"
JITTER, CROP = "aug/color_jitter/strength", "aug/resized_crop/min_scale"
#: the share of trial-epochs pruning must save
SAVED = 0.3
#: case -> (data options over the space's, what must rank at the top, jitter that must win)
CASES = {
    "shape": ({}, {JITTER, CROP}, "strong"),
    "colour": (
        {"label": "colour", "classes": 5, "hue_spread": 1.0, "hue_range": 0.15},
        {JITTER},
        "weak",
    ),
    "colour-easy": (
        {"label": "colour", "classes": 5, "hue_spread": 0.7, "hue_range": 0.25},
        {JITTER},
        "weak",
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(CASES), default="shape")
    parser.add_argument("--trials", type=int, help="override budget.trials")
    parser.add_argument("--epochs", type=int, help="override budget.epochs")
    parser.add_argument("--seed", type=int, help="override the sampler's seed (is a pass luck?)")
    parser.add_argument("--out", help="keep the run here (default: a temporary directory)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another override of the space (e.g. study.pruner.min_resource=8): "
        "to try a change; a pass then says nothing about the shipped space",
    )
    args = parser.parse_args()
    options, planted, wins = CASES[args.case]
    overrides: dict = {}
    if args.trials:
        overrides["budget.trials"] = args.trials
    if args.epochs:
        overrides["budget.epochs"] = args.epochs
    if args.seed is not None:
        overrides["study.sampler.seed"] = args.seed
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = yaml.safe_load(value)
    if options:
        base = load_spec(SPACE).base["data"]
        overrides["data.options"] = {**base["options"], **options}
    spec = load_spec(SPACE, overrides=overrides)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="planted-")) / "run"
    print(
        f"{SPACE.name} ({args.case}): {spec.budget.trials} trials x {spec.budget.epochs} epochs"
        f" on {dict(spec.base['data'])} -> {out}",
        flush=True,
    )
    start = time.perf_counter()
    run_search(spec, out=out, num_cpus=2, verbose=True)
    wall = time.perf_counter() - start
    write_report(out)

    o = digest(out)
    importances = {imp.evaluator: imp for imp in o.importances}
    top5 = o.ranked[:5]
    p = next(p for p in spec.params if p.name == JITTER)
    mean = statistics.geometric_mean if p.log else statistics.mean
    strength = mean(r[f"param/{JITTER}"] for r in top5)
    middle = mean([p.low, p.high])
    decisive = importances["fanova"]
    top_ok = set(decisive.top(len(planted))) == planted
    wins_ok = strength > middle if wins == "strong" else strength < middle
    saved_ok = o.spent.saved >= SAVED
    print()
    print(f"evidence: {o.evidence.describe()}")
    for name, imp in importances.items():
        print(f"{name}:")
        for param, value in imp.values.items():
            mark = "  <- planted" if param in planted else ""
            print(f"  {param:<34} {value:.3f}{mark}")
    print("answer:")
    for line in o.answer():
        print(f"  {line}")
    for line in o.warnings():
        print(f"  warning: {line}")
    print(
        f"best 5 trials: knn_top1 {[round(r['value'], 3) for r in top5]}, "
        f"{'geometric ' if p.log else ''}mean colour-jitter strength {strength:.2f} "
        f"(range {p.low}..{p.high}, middle {middle:.2f}; {wins} must win)"
    )
    print(f"report: {out / 'report.html'}; wall {wall / 60:.1f} min")
    print(f"RESULT case={args.case}")
    for item in args.set:
        print(f"RESULT override={item}")
    print(f"RESULT wall_min={wall / 60:.1f}")
    print(f"RESULT best_knn_top1={o.ranked[0]['value']:.4f}")
    for label, value in o.baseline_values(o.metric).items():
        print(f"RESULT baseline_{label}={value:.4f}")
    print(f"RESULT trial_epochs={o.spent.trial_epochs}/{o.spent.full_epochs}")
    print(f"RESULT pruning_saved={o.spent.saved:.3f}")
    for name, imp in importances.items():
        print(f"RESULT {name}_top2={','.join(imp.top(2))}")
    for e in o.effects:
        if e.param in (JITTER, CROP):
            name = "jitter" if e.param == JITTER else "crop"
            print(f"RESULT effect_{name}={e.size:+.3f} (95% CI {e.ci[0]:+.3f}..{e.ci[1]:+.3f})")
    print(f"RESULT top5_color_jitter_strength={strength:.3f}")
    if o.noise is not None:
        print(f"RESULT noise_sd={o.noise.sd:.4f}")
        print(f"RESULT noise_band={o.band:.4f}")
    print(f"RESULT tied_with_best={len(o.tied)}")
    print(f"RESULT warnings={len(o.warnings())}")
    print(f"RESULT planted_top_found={int(top_ok)}")
    print(f"RESULT {wins}_color_jitter_found={int(wins_ok)}")
    if not args.out:
        shutil.rmtree(out.parent, ignore_errors=True)
    print(f"RESULT pruning_saved_enough={int(saved_ok)}")
    return 0 if top_ok and wins_ok and saved_ok else 1


if __name__ == "__main__":
    sys.exit(main())
