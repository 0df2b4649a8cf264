"""Orchestration: a search spec -> a Ray Tune run sampled and pruned by one Optuna study."""

from __future__ import annotations

from search.run import RunError, RunResult, run_search

__all__ = ["RunError", "RunResult", "run_search"]
