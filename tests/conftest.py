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
