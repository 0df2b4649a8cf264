"""A corpus of broken space files: each names the exact line and key path in its message.

Every ``tests/bad_spaces/*.yaml`` starts with ``# expect: LINE MESSAGE-PREFIX``; the
first problem reported for the file must be at that line and start with that text.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from spaces import SpecError, load_spec

CORPUS = sorted((Path(__file__).parent / "bad_spaces").glob("*.yaml"))


def test_the_corpus_is_large():
    assert len(CORPUS) >= 60


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.stem)
def test_bad_space_is_refused_with_its_location(path):
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# expect: ")
    line, _, message = header.removeprefix("# expect: ").partition(" ")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    reported = info.value.lines()
    expected_prefix = f"{path}:{line} {message}"
    assert any(r.startswith(expected_prefix) for r in reported), (expected_prefix, reported)
