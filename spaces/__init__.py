"""Declared search spaces: YAML -> validated frozen dataclasses -> Optuna define-by-run."""

from __future__ import annotations

from spaces.compile import define_by_run, nest, trial_config
from spaces.schema import SearchSpec, SpecError, load_spec, parse_spec, shipped_spaces

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
