"""After (or during) a run: Parquet tables with declared schemas, summaries, reports."""

from __future__ import annotations

from analysis.importance import Importance, param_importance
from analysis.report import write_report
from analysis.summary import format_summary
from analysis.tables import build_tables, write_tables

__all__ = [
    "Importance",
    "build_tables",
    "format_summary",
    "param_importance",
    "write_report",
    "write_tables",
]
