"""The console progress: counts, the best value in the study's direction, failures."""

from __future__ import annotations

import io
from types import SimpleNamespace

from search.progress import ProgressPrinter


class _Bridge:  # what the printer reads of the study bridge
    def __init__(self):
        self.pruned, self.errors = set(), {}
        self.numbers = {"t0": 0, "t1": 1, "t2": 2}

    def step(self, trial_id, iteration):
        return iteration


def _trial(trial_id, **result):
    return SimpleNamespace(trial_id=trial_id, last_result={"training_iteration": 3, **result})


def test_counts_and_the_best_value_follow_the_direction():
    for mode, best in (("max", "0.9000 (trial 1)"), ("min", "0.2000 (trial 0)")):
        out, bridge = io.StringIO(), _Bridge()
        p = ProgressPrinter(bridge, metric="acc", mode=mode, total=3, stream=out)
        p.on_trial_start(0, [], _trial("t0"))
        p.on_trial_complete(0, [], _trial("t0", acc=0.2))
        p.on_trial_complete(0, [], _trial("t1", acc=0.9))
        bridge.pruned.add("t2")
        p.on_trial_complete(0, [], _trial("t2", acc=5.0))  # pruned: never the best
        last = out.getvalue().splitlines()[-1]
        assert "trial 2 pruned @ epoch 3" in last and "finished 3/3 (pruned 1, failed 0)" in last
        assert last.endswith(f"best acc {best}")


def test_a_failure_is_counted_with_its_reason():
    out, bridge = io.StringIO(), _Bridge()
    bridge.errors["t1"] = "NonFiniteLossError: non-finite loss nan at epoch 2, step 5"
    p = ProgressPrinter(bridge, metric="acc", mode="max", total=2, done=1, stream=out)
    p.on_trial_error(0, [], _trial("t1"))
    lines = out.getvalue().splitlines()
    assert "trial 1 FAILED" in lines[0] and "finished 2/2 (pruned 0, failed 1)" in lines[0]
    assert lines[1].strip().startswith("NonFiniteLossError: non-finite loss nan")
