"""Orchestration: a search spec -> a Ray Tune run sampled and pruned by one Optuna study.

The names below are imported on first use: ``sslsearch --help`` and
``sslsearch spaces ...`` import neither Ray nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RunError", "RunInterrupted", "RunResult", "resume_search", "run_search"]

_HOME = {
    "RunError": "search.errors",
    "RunInterrupted": "search.errors",
    "RunResult": "search.run",
    "resume_search": "search.run",
    "run_search": "search.run",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'search' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
