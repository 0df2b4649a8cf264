"""1,000 trivial trials through the whole stack: how fast, and how much is Optuna's share?

Each trial reports 5 epochs instantly, so everything measured is overhead:
Ray Tune's loop, the Optuna sampler (TPE), the pruner (Median) and the study
storage (SQLite). The time spent inside the sampler bridge — ``suggest``
(ask + define-by-run), ``on_trial_complete`` (tell) and the pruning
scheduler's ``on_trial_result`` (report + should_prune) — is accumulated, and
reported per trial at 200 trials against a realistic trial's time (default:
23.3 s, a 30-epoch demo trial on this CPU; goal <= 2 %). The last lines are
``RESULT name=value``.

    python bench/scale.py [--trials 1000] [--realistic-trial-s 23.3] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

from search import run_search
from search.pruning import OptunaPruningScheduler
from search.sampler import OptunaSearcher
from spaces import parse_spec

SPENT: dict[str, float] = {"suggest": 0.0, "complete": 0.0, "result": 0.0}
COUNTS: dict[str, int] = {"suggest": 0}
MARKS: list[tuple[int, float]] = []  # (trials suggested, optuna seconds so far)


def trivial(config):
    from ray import tune

    for epoch in range(1, 6):
        tune.report({"score": config["x"] * epoch + config["y"]})


def _timed(cls, name: str, key: str) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            SPENT[key] += time.perf_counter() - start
            if key == "suggest":
                COUNTS["suggest"] += 1
                MARKS.append((COUNTS["suggest"], sum(SPENT.values())))

    setattr(cls, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--realistic-trial-s", type=float, default=23.3)
    parser.add_argument("--quick", action="store_true", help="100 trials")
    args = parser.parse_args()
    if args.quick:
        args.trials = 100
    _timed(OptunaSearcher, "suggest", "suggest")
    _timed(OptunaSearcher, "on_trial_complete", "complete")
    _timed(OptunaPruningScheduler, "on_trial_result", "result")
    spec = parse_spec(
        {
            "study": {
                "name": "scale",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": {"name": "tpe", "seed": 0, "multivariate": True, "constant_liar": True},
                "pruner": {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 1},
            },
            "budget": {"trials": args.trials, "epochs": 5, "concurrency": 2},
            "params": {
                "x": {"type": "float", "low": 0.0, "high": 1.0},
                "y": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
            },
        },
        source="scale",
        builtin_trainable=False,
    )
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    out = Path(tempfile.mkdtemp(prefix="bench-scale-")) / "run"
    start = time.perf_counter()
    result = run_search(spec, out=out, trainable=trivial, verbose=False)
    wall = time.perf_counter() - start
    optuna_s = sum(SPENT.values())
    at = min(200, args.trials)
    # sampler + storage seconds spent on the trials up to `at`, per trial
    upto = next((s for n, s in MARKS if n >= at), optuna_s)
    per_trial_200 = upto / at
    # the marginal cost of one more trial around trial `at` (TPE's cost grows with history)
    window = [s for n, s in MARKS if at - 20 <= n <= at]
    marginal = (window[-1] - window[0]) / max(1, len(window) - 1) if len(window) > 1 else 0.0
    share = marginal / args.realistic_trial_s
    print(
        f"{args.trials} trials in {wall:.1f} s: {args.trials / wall:.1f} trials/s; "
        f"states {result.states}"
    )
    print(
        f"sampler bridge: suggest {SPENT['suggest']:.1f} s, tell {SPENT['complete']:.1f} s, "
        f"report+prune {SPENT['result']:.1f} s = {optuna_s:.1f} s "
        f"({100 * optuna_s / wall:.1f} % of wall)"
    )
    print(
        f"at trial {at}: {1000 * per_trial_200:.1f} ms per trial on average so far, "
        f"{1000 * marginal:.1f} ms for one more = {100 * share:.2f} % of a "
        f"{args.realistic_trial_s} s trial"
    )
    print(f"RESULT trials_per_s={args.trials / wall:.2f}")
    print(f"RESULT optuna_share_of_wall_pct={100 * optuna_s / wall:.1f}")
    print(f"RESULT optuna_ms_per_trial_at_{at}={1000 * marginal:.1f}")
    print(f"RESULT optuna_share_of_realistic_trial_pct={100 * share:.2f}")


if __name__ == "__main__":
    main()
