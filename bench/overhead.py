"""What the search stack costs: the same trials under sslsearch vs the bare training loop.

Part 1 — overhead. The same 6 short trials (MAE on digits, a grid over the
masking ratio x 2 seeds, 6 epochs, kNN every 3) run (a) bare: the training
loop of ``trainables.loop`` in a plain process pool of 2, one thread each, the
libraries imported and the data decoded once per process; (b) under
sslsearch: Ray Tune, the Optuna sampler and pruner, SQLite, checkpoints every
epoch, 2 trials at a time. Two ratios: start-up included (``overhead_ratio``:
pool creation to the last end vs Optuna's first start to last completion,
which includes starting the actors) and steady state
(``overhead_ratio_steady``: from the first epoch's start on both sides; under
Tune that start is a result's timestamp, whole seconds, less its epoch's
time). The whole ``run_search`` call, which also measures the random-init
baseline, re-runs the best configuration twice (the noise floor) and writes
the tables and the report, is printed too. Goal: <= 1.10.

Part 2 — start-up per trial. 1-epoch trials on 2,000 generated shapes (slow to
generate, so where the data is decoded shows) with and without the dataset in
Ray's object store, and with and without actor reuse.

The last lines are ``RESULT name=value``. Interleaved, one run each.

    python bench/overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from os.path import join
from pathlib import Path

import optuna
import torch

from analysis.results import result_rows
from analysis.rundir import RunDir, open_storage
from search import run_search
from search.recover import trial_dir
from spaces import parse_spec
from spaces.compile import trial_config

BASE = {
    "description": "overhead benchmark",
    "study": {
        "name": "overhead",
        "objective": {"metric": "knn_top1", "direction": "maximize"},
        "sampler": {"name": "grid", "seed": 0, "repeats": 2},
        "pruner": {"name": "none"},
    },
    "budget": {"epochs": 6, "concurrency": 2, "resources": {"cpu": 1}},
    "data": {"name": "digits", "val_fraction": 0.25, "seed": 0},
    "model": {"name": "vit_digits"},
    "loss": {"name": "mae"},
    "probe": {"names": ["knn"], "every": 3},
    "train": {"threads": 1},
    "params": {"mask/ratio": {"type": "grid", "values": [0.5, 0.6, 0.75]}},
}


_DATA: dict = {}


def _load(config: dict) -> None:
    """Pool initializer: the libraries imported and the dataset decoded before any trial."""
    import trainables.loop  # noqa: F401  (what an actor imports before its first epoch)
    from trainables.data import load_dataset
    from trainables.validate import parse_trial_config

    torch.set_num_threads(1)
    cfg = parse_trial_config(config)
    _DATA[repr(cfg.data)] = load_dataset(cfg.data)


def _bare_trial(config: dict) -> tuple[float, float]:
    """One trial in a worker: its (start, end) wall-clock times."""
    from trainables.loop import Trainer, run_epochs
    from trainables.validate import parse_trial_config

    start = time.time()
    cfg = parse_trial_config(config)
    trainer = Trainer(cfg, _DATA[repr(cfg.data)])
    with tempfile.TemporaryDirectory() as d:
        for _ in run_epochs(trainer):
            trainer.save(d)  # the same checkpoint per epoch as under Tune
    return start, time.time()


def bare(spec) -> tuple[float, float]:
    """(with start-up, without): pool creation to the last end; first trial start to last end."""
    configs = []
    for ratio in (0.5, 0.6, 0.75):
        for repeat in range(2):
            configs.append(trial_config(spec, {"mask/ratio": ratio, "train/seed": repeat}))
    begin = time.time()
    with mp.get_context("spawn").Pool(2, initializer=_load, initargs=(configs[0],)) as pool:
        times = pool.map(_bare_trial, configs, chunksize=1)
    end = max(e for _, e in times)
    return end - begin, end - min(s for s, _ in times)


def _spans(out: Path, name: str) -> tuple[float, float]:
    """(with start-up, without): the trials' span from Optuna's start times, and from
    the first epoch's start (its result's timestamp, whole seconds, less the epoch)."""
    study = optuna.load_study(
        study_name=name, storage=open_storage(f"sqlite:///{out / 'study.db'}")
    )
    trials = [t for t in study.trials if t.datetime_start and t.datetime_complete]
    first = min(t.datetime_start for t in trials).timestamp()
    last = max(t.datetime_complete for t in trials).timestamp()
    epoch_starts = []
    for t in trials:
        row = result_rows(join(trial_dir(RunDir(out), t), "result.json"))[0]
        epoch_starts.append(row["timestamp"] - row["time_this_iter_s"])
    return last - first, last - min(epoch_starts)


def searched(spec, out: Path, **options) -> tuple[float, float, float]:
    """(trials' span with start-up, without, the whole run_search call)."""
    start = time.perf_counter()
    run_search(spec, out=out, verbose=False, **options)
    total = time.perf_counter() - start
    return (*_spans(out, spec.study.name), total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs, start-up part skipped")
    args = parser.parse_args()
    data = dict(BASE)
    if args.quick:
        data["budget"] = {**BASE["budget"], "epochs": 2}
        data["probe"] = {**BASE["probe"], "every": 1}
    spec = parse_spec(data, source="overhead")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    root = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    bare_s, bare_steady = bare(spec)
    span, steady, total = searched(spec, root / "searched")
    print(f"6 trials x {spec.budget.epochs} epochs, 2 at a time:")
    print("  start-up included (processes, imports, data):")
    print(f"    bare loop (process pool of 2)   {bare_s:6.1f} s")
    print(f"    sslsearch, trials' span         {span:6.1f} s  ({span / bare_s:.2f}x)")
    print(f"    sslsearch, whole run_search     {total:6.1f} s  ({total / bare_s:.2f}x)")
    print("  steady state (from the first epoch's start):")
    print(f"    bare loop                       {bare_steady:6.1f} s")
    print(f"    sslsearch                       {steady:6.1f} s  ({steady / bare_steady:.2f}x)")
    print(f"RESULT overhead_ratio={span / bare_s:.3f}")
    print(f"RESULT overhead_ratio_steady={steady / bare_steady:.3f}")
    print(f"RESULT overhead_ratio_whole_run={total / bare_s:.3f}")
    if args.quick:
        return

    shapes = dict(BASE)
    shapes.update(
        study={**BASE["study"], "name": "startup"},
        budget={"epochs": 1, "concurrency": 2, "resources": {"cpu": 1}},
        data={"name": "shapes", "options": {"count": 2000, "image_size": 16}},
        probe={"names": ["knn"], "every": 1},
        optim={"batch_size": 256},
    )
    spec = parse_spec(shapes, source="startup")
    variants = {
        "object store + actor reuse": {},
        "object store, no actor reuse": {"reuse_actors": False},
        "data decoded per trial + reuse": {"share_dataset": False},
    }
    spans = {}
    for i, (name, options) in enumerate(variants.items()):
        span, _, _ = searched(spec, root / f"startup{i}", **options)
        spans[name] = span
    base = spans["object store + actor reuse"]
    print("6 one-epoch trials on 2,000 shapes, 2 at a time (trials' span):")
    for name, span in spans.items():
        extra = (span - base) / 3  # 6 trials, 2 at a time: 3 rounds
        print(f"  {name:<32} {span:6.1f} s   {extra:+5.2f} s per trial vs the default")
        key = name.replace(" + ", "_").replace(", ", "_").replace(" ", "_")
        print(f"RESULT startup_{key}_s={span:.2f}")


if __name__ == "__main__":
    main()
