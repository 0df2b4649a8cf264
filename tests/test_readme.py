"""Every Python snippet of the README runs as it is written.

Each runs in a fresh interpreter (the extension snippets register new entries;
they must not leak into the suite's registries), with the working directory
holding ``runs/demo``: a real, tiny run made by the CLI, for the snippets that
read a run's tables.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _snippets() -> list[tuple[int, str]]:
    text = README.read_text(encoding="utf-8")
    out = []
    for match in re.finditer(r"^( *)```python\n(.*?)^\1```", text, flags=re.M | re.S):
        line = text[: match.start()].count("\n") + 1
        out.append((line, textwrap.dedent(match.group(2))))
    return out


SNIPPETS = _snippets()


def test_the_readme_has_the_snippets_it_promises():
    codes = [code for _, code in SNIPPETS]
    assert len(codes) >= 7
    for kind in ("register_masking", "register_augment_op", "register_probe", "register_objective"):
        assert any(kind in code for code in codes), kind


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A directory with ``runs/demo``: two one-epoch trials of the default space."""
    root = tmp_path_factory.mktemp("readme")
    if not any("runs/demo" in code for _, code in SNIPPETS):
        return root
    args = ["run", "--out", "runs/demo", "--trials", "2", "--epochs", "1"]
    no_noise = ["--set", "budget.noise_seeds=0"]  # no snippet reads the noise floor
    proc = subprocess.run(
        [sys.executable, "-m", "search", *args, "--set", "study.pruner=none", *no_noise],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize(("line", "code"), SNIPPETS, ids=[f"line{n}" for n, _ in SNIPPETS])
def test_a_readme_snippet_runs(line, code, demo_dir):
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=demo_dir, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"README.md:{line}\n{code}\n{proc.stderr[-3000:]}"
