"""1,000 trivial trials through the whole stack: how fast, and how much is Optuna's share?

Each trial reports 5 epochs instantly, so everything measured is overhead:
Ray Tune's loop, the Optuna sampler (TPE), the pruner (Median) and the study
storage (SQLite). The time spent inside the sampler bridge — ``suggest``
(ask + define-by-run), ``on_trial_complete`` (tell) and the pruning
scheduler's ``on_trial_result`` (report + should_prune) — is accumulated, and
reported per trial at 200 trials against a realistic trial's time (default:
23.3 s, a 30-epoch demo trial on this CPU; goal <= 2 %).

Side by side, the same trials through Ray Tune's own bridge,
``ray.tune.search.optuna.OptunaSearch``, with the same sampler (TPE,
multivariate, constant liar, seed 0), the same kind of storage (SQLite
through Optuna's cached RDB storage, as sslsearch's) and concurrency; its
``suggest``, ``on_trial_result`` (report) and ``on_trial_complete`` (tell)
are timed the same way. Ray's bridge decides no pruning, so sslsearch runs
twice: with the Median pruner asked after every epoch (what a study ships
with) and with ``pruner: none`` (the same work as Ray's bridge: ask, report,
tell). Goal: sslsearch's bridge no slower like for like
(``bridge_ratio_vs_ray``, the run without a pruner, <= 1);
``bridge_ratio_vs_ray_with_pruner`` adds the pruner's decisions. The last
lines are ``RESULT name=value``.

    python bench/scale.py [--trials 1000] [--realistic-trial-s 23.3] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import shutil
import tempfile
import time
from pathlib import Path

import optuna

from search import run_search
from search.pruning import OptunaPruningScheduler
from search.sampler import OptunaSearcher
from spaces import parse_spec

SPENT: dict[str, float] = {"suggest": 0.0, "complete": 0.0, "result": 0.0}
COUNTS: dict[str, int] = {"suggest": 0}
MARKS: list[tuple[int, float]] = []  # (trials suggested, bridge seconds so far)
SAMPLER = {"name": "tpe", "seed": 0, "multivariate": True, "constant_liar": True}


def trivial(config):
    from ray import tune

    for epoch in range(1, 6):
        tune.report({"score": config["x"] * epoch + config["y"]})


def _reset() -> None:
    SPENT.update(dict.fromkeys(SPENT, 0.0))
    COUNTS["suggest"] = 0
    MARKS.clear()


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


MEDIAN = {"name": "median", "n_startup_trials": 5, "n_warmup_steps": 1}


def run_ours(trials: int, root: Path, pruner: dict) -> tuple[float, dict[str, int]]:
    """sslsearch's bridge: OptunaSearcher + ``pruner`` in the loop + SQLite."""
    spec = parse_spec(
        {
            "study": {
                "name": "scale",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": SAMPLER,
                "pruner": pruner,
            },
            "budget": {"trials": trials, "epochs": 5, "concurrency": 2},
            "params": {
                "x": {"type": "float", "low": 0.0, "high": 1.0},
                "y": {"type": "float", "low": 1e-3, "high": 1.0, "log": True},
            },
        },
        source="scale",
        builtin_trainable=False,
    )
    start = time.perf_counter()
    result = run_search(spec, out=root / "ours", trainable=trivial, verbose=False)
    return time.perf_counter() - start, result.states


def run_ray(trials: int, root: Path) -> tuple[float, dict[str, int]]:
    """Ray Tune's bridge: OptunaSearch with the same sampler and an SQLite storage."""
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    root.mkdir(parents=True, exist_ok=True)
    options = {k: v for k, v in SAMPLER.items() if k != "name"}
    searcher = OptunaSearch(
        space={
            "x": optuna.distributions.FloatDistribution(0.0, 1.0),
            "y": optuna.distributions.FloatDistribution(1e-3, 1.0, log=True),
        },
        metric="score",
        mode="max",
        sampler=optuna.samplers.TPESampler(**options),
        study_name="scale",
        storage=optuna.storages.get_storage(f"sqlite:///{root / 'ray.db'}"),
    )
    tuner = tune.Tuner(
        tune.with_resources(trivial, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=searcher, num_samples=trials, max_concurrent_trials=2, reuse_actors=True
        ),
        run_config=tune.RunConfig(name="ray", storage_path=str(root.resolve()), verbose=0),
    )
    start = time.perf_counter()
    grid = tuner.fit()
    wall = time.perf_counter() - start
    states: dict[str, int] = {}
    for r in grid:
        key = "ERROR" if r.error else "COMPLETE"
        states[key] = states.get(key, 0) + 1
    return wall, states


def describe(label: str, trials: int, wall: float, states: dict, realistic_s: float) -> dict:
    bridge = sum(SPENT.values())
    at = min(200, trials)
    # the marginal cost of one more trial around trial `at` (TPE's cost grows with history)
    window = [s for n, s in MARKS if at - 20 <= n <= at]
    marginal = (window[-1] - window[0]) / max(1, len(window) - 1) if len(window) > 1 else 0.0
    print(
        f"{label}: {trials} trials in {wall:.1f} s: {trials / wall:.1f} trials/s; states {states}"
    )
    print(
        f"  bridge: suggest {SPENT['suggest']:.1f} s, tell {SPENT['complete']:.1f} s, "
        f"report{'+prune' if label == 'sslsearch' else ''} {SPENT['result']:.1f} s = "
        f"{bridge:.1f} s ({100 * bridge / wall:.1f} % of wall)"
    )
    print(
        f"  at trial {at}: {1000 * marginal:.1f} ms for one more trial = "
        f"{100 * marginal / realistic_s:.2f} % of a {realistic_s} s trial",
        flush=True,
    )
    return {"wall": wall, "bridge": bridge, "marginal": marginal, "at": at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--realistic-trial-s", type=float, default=23.3)
    parser.add_argument("--quick", action="store_true", help="100 trials")
    args = parser.parse_args()
    if args.quick:
        args.trials = 100
    from ray.tune.search.optuna import OptunaSearch

    _timed(OptunaSearcher, "suggest", "suggest")
    _timed(OptunaSearcher, "on_trial_complete", "complete")
    _timed(OptunaPruningScheduler, "on_trial_result", "result")
    _timed(OptunaSearch, "suggest", "suggest")
    _timed(OptunaSearch, "on_trial_complete", "complete")
    _timed(OptunaSearch, "on_trial_result", "result")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        _reset()
        ours = describe(
            "sslsearch",
            args.trials,
            *run_ours(args.trials, root / "median", MEDIAN),
            args.realistic_trial_s,
        )
        _reset()
        plain = describe(
            "sslsearch, no pruner",
            args.trials,
            *run_ours(args.trials, root / "none", {"name": "none"}),
            args.realistic_trial_s,
        )
        _reset()
        rays = describe(
            "ray", args.trials, *run_ray(args.trials, root / "ray"), args.realistic_trial_s
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    at = ours["at"]
    print(f"RESULT trials_per_s={args.trials / ours['wall']:.2f}")
    print(f"RESULT ray_trials_per_s={args.trials / rays['wall']:.2f}")
    print(f"RESULT optuna_share_of_wall_pct={100 * ours['bridge'] / ours['wall']:.1f}")
    print(f"RESULT optuna_ms_per_trial_at_{at}={1000 * ours['marginal']:.1f}")
    share = ours["marginal"] / args.realistic_trial_s
    print(f"RESULT optuna_share_of_realistic_trial_pct={100 * share:.2f}")
    print(f"RESULT bridge_s={ours['bridge']:.1f}")
    print(f"RESULT ray_bridge_s={rays['bridge']:.1f}")
    print(f"RESULT bridge_no_pruner_s={plain['bridge']:.1f}")
    print(f"RESULT trials_per_s_no_pruner={args.trials / plain['wall']:.2f}")
    # like for like: Ray's bridge decides no pruning
    print(f"RESULT bridge_ratio_vs_ray={plain['bridge'] / rays['bridge']:.3f}")
    print(f"RESULT bridge_ratio_vs_ray_with_pruner={ours['bridge'] / rays['bridge']:.3f}")


if __name__ == "__main__":
    main()
