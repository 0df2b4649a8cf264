"""Reading a run's Tune experiments, from local paths or any pyarrow URI.

By default the Tune experiments (``tune``, ``tune.1`` ... one per session) are
inside the run directory. With ``--storage-path URI`` (a shared file system or
any URI Ray accepts: ``s3://``, ``gs://``, ``file://``) they are under
``URI/<run directory name>``, recorded in ``RUN_DIR/run.json``
(:meth:`analysis.rundir.RunDir.experiments_root`); the tables, the report and
``resume`` read them from there through ``pyarrow.fs``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow.fs as pafs

__all__ = ["is_dir", "join", "read_text", "result_files", "result_rows"]


def _fs(location: str) -> tuple[pafs.FileSystem, str]:
    if "://" in location:
        return pafs.FileSystem.from_uri(location)
    return pafs.LocalFileSystem(), location


def join(location: str, *parts: str) -> str:
    """``location/part/...`` for a path or a URI."""
    return "/".join([location.rstrip("/"), *parts])


def read_text(location: str) -> str | None:
    """The file's text, or None when it does not exist (yet)."""
    fs, path = _fs(location)
    try:
        with fs.open_input_stream(path) as f:
            return f.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, OSError):
        return None


def result_rows(location: str) -> list[dict[str, Any]]:
    """The rows of a Tune ``result.json`` (path or URI); a half-written last line is skipped.

    Example:
        >>> result_rows("/no/such/result.json")
        []
    """
    rows = []
    for line in (read_text(location) or "").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line a kill cut short
            continue
    return rows


def is_dir(location: str) -> bool:
    fs, path = _fs(location)
    try:
        return fs.get_file_info(path).type == pafs.FileType.Directory
    except OSError:
        return False


def result_files(root: str, *, experiment: str = "tune") -> list[str]:
    """Every trial's ``result.json`` under ``root``, in session order.

    The sessions' Tune experiments are ``experiment`` and ``experiment.N``.
    """
    fs, base = _fs(root)
    try:
        experiments = [
            info.base_name
            for info in fs.get_file_info(pafs.FileSelector(base, allow_not_found=True))
            if info.type == pafs.FileType.Directory
            and (info.base_name == experiment or info.base_name.startswith(f"{experiment}."))
        ]
    except OSError:
        return []

    def session(name: str) -> int:
        suffix = name.partition(".")[2]
        return int(suffix) if suffix.isdigit() else 0

    out = []
    for name in sorted(experiments, key=session):
        selector = pafs.FileSelector(join(base, name), allow_not_found=True)
        for info in sorted(fs.get_file_info(selector), key=lambda i: i.base_name):
            if info.type == pafs.FileType.Directory and info.base_name.startswith("trial_"):
                candidate = join(root, name, info.base_name, "result.json")
                if fs.get_file_info(join(info.path, "result.json")).type == pafs.FileType.File:
                    out.append(candidate)
    return out
