"""The errors of a run: it cannot start, no trial could run, or it was interrupted."""

from __future__ import annotations

from trainables.errors import SSLSearchError

__all__ = ["RunError", "RunInterrupted"]


class RunError(SSLSearchError, RuntimeError):
    """A run that cannot start or in which no trial could run (exit status 1)."""

    exit_code = 1


class RunInterrupted(RunError):
    """The run stopped (Ctrl-C) before its budget was spent; ``resume`` continues it (130)."""

    exit_code = 130
