"""Shared fixtures: one local Ray (2 CPUs, no dashboard) for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray with 2 CPUs, shut down at the end of the session."""
    import ray

    if not ray.is_initialized():
        # Trainables defined in test modules are pickled by reference: let the
        # workers import the test modules too.
        here = str(Path(__file__).parent)
        ray.init(
            address="local",  # a new Ray, never one a /tmp/ray record points at
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            runtime_env={"env_vars": {"PYTHONPATH": here}},
        )
    yield ray
    ray.shutdown()


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def study_created(db: Path, name: str) -> bool:
    """Whether the run being watched has created study ``name`` in the SQLite file ``db``.

    Read-only, through sqlite3: ``optuna.load_study`` on a file whose tables do not
    exist yet would create them, racing the run's own creation (one side then fails
    with "table studies already exists").
    """
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True) as con:
            row = con.execute("SELECT 1 FROM studies WHERE study_name = ?", (name,)).fetchone()
    except sqlite3.Error:  # no tables yet, or locked for a moment
        return False
    return row is not None


def _pg_binary(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on a Unix socket; its SQLAlchemy URL.

    `.ci/run` installs Debian's postgresql; elsewhere the test is skipped when
    the server binaries are missing (in CI it fails instead).
    """
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries not found (.ci/run installs postgresql)")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found")
    root = Path(tempfile.mkdtemp(prefix="sslsearch-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [*as_user, *cmd], check=True, capture_output=True, text=True, timeout=120
    )
    run(initdb, "-D", str(data), "-A", "trust", "-U", "sslsearch", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses='' -c fsync=off"
    run(pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start")
    try:
        psql = _pg_binary("psql") or "psql"
        where = ["-h", str(root), "-p", str(port), "-U", "sslsearch", "-d", "postgres"]
        run(psql, *where, "-c", "CREATE DATABASE optuna")
        yield f"postgresql+psycopg2://sslsearch@/optuna?host={root}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)
