"""Orchestration: a search spec -> a Ray Tune run sampled and pruned by one Optuna study."""

from __future__ import annotations

from search.run import RunError, RunInterrupted, RunResult, resume_search, run_search

__all__ = ["RunError", "RunInterrupted", "RunResult", "resume_search", "run_search"]
