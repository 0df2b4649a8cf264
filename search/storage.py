"""Where a run's Optuna study lives: ``RUN_DIR/study.db`` (SQLite) unless a URL is given."""

from __future__ import annotations

from pathlib import Path

__all__ = ["STUDY_FILE", "default_storage_url"]

STUDY_FILE = "study.db"


def default_storage_url(run_dir: str | Path) -> str:
    """``sqlite:////abs/RUN_DIR/study.db``: openable by ``optuna`` CLI and optuna-dashboard.

    Example:
        >>> default_storage_url("/tmp/run")
        'sqlite:////tmp/run/study.db'
    """
    return f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"
