"""Does the short-run answer hold? The whole path: a search, then ``confirm`` on its answer.

For each space (default: the shipped ``default`` and ``mask_ratio_sweep``)
the search runs as shipped, with the label-free probes added (RankMe,
alpha-ReQ, alignment/uniformity, LiDAR: the proxies judged) and without the
noise floor's re-runs (``confirm`` measures the seeds' spread itself); then
``sslsearch confirm`` re-trains the best configurations and the controls
with its defaults (3 best + 3 controls, 3 seeds, twice the search's epochs).
Printed per space: the short- and long-run score of each confirmed
configuration, the rank agreement, the regret of the short-run choice and
what selecting by each label-free score would have lost. The last lines are
``RESULT name=value``; ``labelfree_loss_points_<space>`` is RankMe's (the
label-free score most used for selection), the others follow it by name.
Points are accuracy x 100; a loss is the labelled long-run score of the
labelled short-run choice minus that of the label-free choice (negative: the
label-free score chose better). ``--quick``: fewer trials and epochs, under
10 minutes.

    python bench/fidelity.py [--spaces default mask_ratio_sweep] [--quick] [--out DIR]
        [--set KEY.PATH=VALUE ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from analysis.ablation import confirmation
from analysis.holds import holds_sentences
from analysis.rundir import RunDir
from search import run_search
from search.confirm import run_confirm
from spaces import load_spec, shipped_spaces

LABEL_FREE = ["rankme", "alpha_req", "align_uniform", "lidar"]
HEADLINE = "rankme"
#: --quick: the search's budget per space, and confirm's plan
QUICK = {
    "default": {"budget.trials": 8, "budget.epochs": 8, "probe.every": 4, "train.horizon": 16},
    "mask_ratio_sweep": {"budget.epochs": 8, "study.sampler.repeats": 1, "probe.every": 4},
}
QUICK_CONFIRM = {"top": 2, "controls": 2, "seeds": 2}


def measure(
    space: str, out: Path, *, quick: bool, sets: dict[str, Any] | None = None
) -> dict[str, float]:
    path = shipped_spaces()[space]
    base = load_spec(path).base.get("probe", {})
    overrides = dict(QUICK.get(space, {})) if quick else {}
    overrides.update(sets or {})
    overrides["probe.names"] = list(dict.fromkeys([*base.get("names", ["knn"]), *LABEL_FREE]))
    overrides["budget.noise_seeds"] = 0
    spec = load_spec(path, overrides=overrides)
    print(
        f"{space}: {spec.budget.trials} trials x {spec.budget.epochs} epochs, then confirm"
        f" -> {out}",
        flush=True,
    )
    start = time.perf_counter()
    run_search(spec, out=out, num_cpus=2, verbose=False)
    searched = time.perf_counter() - start
    plan = run_confirm(out, num_cpus=2, **(QUICK_CONFIRM if quick else {}))
    confirmed = time.perf_counter() - start - searched
    c = confirmation(RunDir(out))
    print(
        f"  search {searched / 60:.1f} min; confirm {confirmed / 60:.1f} min "
        f"({len(plan.candidates)} configurations x {plan.seeds} seeds x {plan.epochs} epochs)"
    )
    print(f"  {'rank':>4} {'role':<8} {'short':>7} {'long (mean, 95 % CI)':<28}")
    for r in c.configs:
        print(
            f"  {r.candidate.rank:>4} {r.candidate.role:<8} {r.candidate.short:7.4f} "
            f"{r.mean:.4f} ({r.low:.4f} .. {r.high:.4f}), n {len(r.values)}"
        )
    for line in holds_sentences(c, points=True):
        print(f"  {line}")
    out_ = {
        "spearman": c.spearman,
        "kendall": c.kendall,
        "regret_points": 100 * c.regret,
        "tied": float(bool(c.tied)),
        "minutes": (searched + confirmed) / 60,
    }
    for p in c.proxies:
        print(
            f"  {p.metric:<12} Spearman {p.spearman:+.2f} over {p.n}; chose short rank "
            f"{next(r.candidate.rank for r in c.configs if r.candidate.key == p.picked)}: "
            f"{100 * p.lost:.1f} points below the long-run best; loss vs the labelled "
            f"choice {-100 * p.vs_labelled:+.1f} points"
        )
        out_[f"labelfree_loss_points_{p.metric}"] = -100 * p.vs_labelled
        out_[f"labelfree_spearman_{p.metric}"] = p.spearman
    return out_


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["default", "mask_ratio_sweep"])
    parser.add_argument("--quick", action="store_true", help="fewer trials and epochs")
    parser.add_argument("--out", help="keep the runs here (default: a temporary directory)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a value of every space searched (e.g. train.horizon=60)",
    )
    args = parser.parse_args()
    sets = {}
    for item in args.set:
        key, sep, raw = item.partition("=")
        if not sep:
            parser.error(f"--set {item!r}: expected key.path=value")
        sets[key] = yaml.safe_load(raw)
    unknown = sorted(set(args.spaces) - set(shipped_spaces()))
    if unknown:
        parser.error(f"not shipped spaces: {', '.join(unknown)}")
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fidelity-"))
    results = {}
    for space in args.spaces:
        results[space] = measure(space, root / space, quick=args.quick, sets=sets)
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)
    for space, r in results.items():
        print(f"RESULT minutes_{space}={r['minutes']:.1f}")
        print(f"RESULT kendall_short_long_{space}={r['kendall']:.3f}")
        for key, value in r.items():
            if key.startswith("labelfree_") and not key.endswith(f"_{HEADLINE}"):
                print(f"RESULT {key}_{space}={value:.3f}")
        print(f"RESULT tied_{space}={int(r['tied'])}")
        print(f"RESULT spearman_short_long_{space}={r['spearman']:.3f}")
        print(f"RESULT regret_points_{space}={r['regret_points']:.2f}")
        loss = r.get(f"labelfree_loss_points_{HEADLINE}", float("nan"))
        print(f"RESULT labelfree_loss_points_{space}={loss:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
