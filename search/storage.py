"""Where a run's Optuna study lives: ``RUN_DIR/study.db`` (SQLite) unless a URL is given."""

from __future__ import annotations

from pathlib import Path

import optuna

__all__ = ["STUDY_FILE", "default_storage_url", "open_storage", "resolve_storage_url"]

STUDY_FILE = "study.db"


def default_storage_url(run_dir: str | Path) -> str:
    """``sqlite:////abs/RUN_DIR/study.db``: openable by ``optuna`` CLI and optuna-dashboard.

    Example:
        >>> default_storage_url("/tmp/run")
        'sqlite:////tmp/run/study.db'
    """
    return f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def resolve_storage_url(url: str | None, run_dir: str | Path) -> str:
    """The study's storage URL: ``RUN_DIR/study.db`` by default; a relative
    ``journal:PATH`` or ``sqlite:///PATH`` is taken relative to the run directory."""
    if url is None:
        return default_storage_url(run_dir)
    for scheme in ("journal:", "sqlite:///"):
        if url.startswith(scheme):
            path = Path(url.removeprefix(scheme))
            if not path.is_absolute():
                path = Path(run_dir).resolve() / path
            return f"{scheme}{path}"
    return url


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    """What ``optuna.create_study(storage=...)`` takes for ``url``.

    ``journal:PATH`` is a JournalStorage on a file (for shared file systems, where
    SQLite's locking is unreliable); anything else is an RDB URL (SQLite,
    PostgreSQL with ``pip install psycopg2-binary``, MySQL).

    Example:
        >>> type(open_storage("journal:/tmp/x.log")).__name__
        'JournalStorage'
    """
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    return url
