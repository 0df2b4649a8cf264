"""Declared search spaces: YAML -> validated frozen dataclasses -> Optuna define-by-run.

``import spaces`` imports neither torch nor Ray.

Example:
    >>> from spaces import load_spec, shipped_spaces
    >>> spec = load_spec(shipped_spaces()["default"])
    >>> spec.objective.metric
    'knn_top1'
"""

from __future__ import annotations

from spaces.compile import define_by_run, nest, trial_config
from spaces.errors import SpecError
from spaces.load import shipped_spaces
from spaces.model import SearchSpec
from spaces.parse import load_spec, parse_spec

__all__ = [
    "SearchSpec",
    "SpecError",
    "define_by_run",
    "load_spec",
    "nest",
    "parse_spec",
    "shipped_spaces",
    "trial_config",
]
