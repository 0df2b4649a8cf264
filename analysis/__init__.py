"""After (or during) a run: Parquet tables with declared schemas, summaries, reports."""

from __future__ import annotations

from analysis.summary import format_summary
from analysis.tables import build_tables, write_tables

__all__ = ["build_tables", "format_summary", "write_tables"]
