"""Console progress of a run: one line per trial event with the best score so far."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

from ray.tune import Callback

from search.sampler import StudyBridge

__all__ = ["ProgressPrinter"]


class ProgressPrinter(Callback):
    """Print ``running / finished / pruned / failed`` counts and the best value so far.

    Args:
        bridge: the run's study bridge (to know which trials were pruned).
        metric: the primary objective.
        mode: ``max`` or ``min``.
        total: the trial budget.
        done: trials already finished (a resumed run).
        best: ``(value, trial number)`` of the best trial so far (a resumed run).
        stream: where to print (stdout by default).
    """

    def __init__(
        self,
        bridge: StudyBridge,
        *,
        metric: str,
        mode: str,
        total: int,
        done: int = 0,
        best: tuple[float, int] | None = None,
        stream: TextIO | None = None,
    ) -> None:
        self.bridge = bridge
        self.metric = metric
        self.mode = mode
        self.total = total
        self.stream = stream or sys.stdout
        self.start = time.monotonic()
        self.running: set[str] = set()
        self.started: set[str] = set()
        self.finished, self.failed = done, 0
        self.best: tuple[float, int] | None = best

    def _print(self, event: str) -> None:
        pruned = len(self.bridge.pruned)
        best = "-"
        if self.best is not None:
            best = f"{self.best[0]:.4f} (trial {self.best[1]})"
        elapsed = time.monotonic() - self.start
        self.stream.write(
            f"[{elapsed:6.0f}s] {event:<28} running {len(self.running)}, "
            f"finished {self.finished}/{self.total} "
            f"(pruned {pruned}, failed {self.failed}) | best {self.metric} {best}\n"
        )
        self.stream.flush()

    def _number(self, trial: Any) -> int | str:
        return self.bridge.numbers.get(trial.trial_id, trial.trial_id)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        again = trial.trial_id in self.started  # PBT restarts a trial from a checkpoint
        self.running.add(trial.trial_id)
        self.started.add(trial.trial_id)
        self._print(f"trial {self._number(trial)} {'restarted' if again else 'started'}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.finished += 1
        result = trial.last_result or {}
        value = result.get(self.metric)
        pruned = trial.trial_id in self.bridge.pruned
        if isinstance(value, int | float) and math.isfinite(value) and not pruned:
            better = self.best is None or (
                value > self.best[0] if self.mode == "max" else value < self.best[0]
            )
            if better:
                self.best = (float(value), self._number(trial))
        epoch = self.bridge.step(trial.trial_id, int(result.get("training_iteration", 0)))
        what = "pruned" if pruned else "finished"
        self._print(f"trial {self._number(trial)} {what} @ epoch {epoch}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.running.discard(trial.trial_id)
        self.finished += 1
        self.failed += 1
        reason = self.bridge.errors.get(trial.trial_id, "")
        self._print(f"trial {self._number(trial)} FAILED")
        if reason:
            self.stream.write(f"          {reason[:300]}\n")
