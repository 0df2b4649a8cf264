"""A run on a real multi-node Ray cluster on this machine, losing a worker node mid-trial.

Started by ``tests/test_tuner.py`` in its own process (a driver can attach to
one Ray cluster only): head (no CPUs) + 2 worker nodes of 1 CPU; when a trial
on worker 0 has checkpointed twice, worker 0 is removed without warning.
Writes ``{"number": trial, "node": killed node id}`` to ``killed.json`` beside
RUN_DIR (a file: Ray's log lines share stdout and can land inside a printed
line) and prints it as ``RESULT ...``.

    python tests/cluster_run.py RUN_DIR
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
import ray
from conftest import study_created
from ray.cluster_utils import Cluster

from search import run_search
from spaces import parse_spec


def steady(config):
    from ray import tune

    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            start = int(Path(d, "epoch").read_text())
    node = ray.get_runtime_context().get_node_id()
    for epoch in range(start + 1, config["train"]["epochs"] + 1):
        time.sleep(0.6)
        with tempfile.TemporaryDirectory() as d:
            Path(d, "epoch").write_text(str(epoch))
            tune.report(
                {"score": config["x"] * epoch, "node": node},
                checkpoint=tune.Checkpoint.from_directory(d),
            )


def _rows(out: Path, trial: optuna.trial.FrozenTrial) -> list[dict]:
    path = out / "tune" / f"trial_{trial.user_attrs['tune_trial_id']}" / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    out = Path(sys.argv[1])
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False}
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, logging_level="ERROR")
    spec = parse_spec(
        {
            "study": {
                "name": "nodes",
                "objective": {"metric": "score", "direction": "maximize"},
                "sampler": {"name": "random", "seed": 0},
                "pruner": {"name": "none"},
            },
            "budget": {"trials": 4, "epochs": 6, "concurrency": 2, "max_failures": 2},
            "params": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
        },
        source="nodes.yaml",
        builtin_trainable=False,
    )
    storage = f"sqlite:///{out / 'study.db'}"
    killed: dict = {}

    def kill_a_worker() -> None:
        victim = workers[0]
        while True:  # once a trial on the victim has checkpointed twice, kill its node
            time.sleep(0.2)
            if not study_created(out / "study.db", "nodes"):
                continue  # (loading it now would race the run's creation of the tables)
            study = optuna.load_study(study_name="nodes", storage=storage)
            for t in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
                rows = _rows(out, t) if "tune_trial_id" in t.user_attrs else []
                if len(rows) >= 2 and rows[-1]["node"] == victim.node_id:
                    killed.update(number=t.number, node=victim.node_id)
                    cluster.remove_node(victim, allow_graceful=False)
                    return

    threading.Thread(target=kill_a_worker, daemon=True).start()
    try:
        run_search(spec, out=out, address=cluster.address, trainable=steady, verbose=False)
        (out.parent / "killed.json").write_text(json.dumps(killed), encoding="utf-8")
        print("RESULT " + json.dumps(killed), flush=True)
    finally:  # a cluster left up leaves /tmp/ray pointing at it for every later ray.init
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
