"""One error base: every error the project raises on purpose, with the CLI's exit code."""

from __future__ import annotations

import pytest

from search.errors import RunError, RunInterrupted
from spaces.errors import Problems, SpecError, key_of
from trainables._registry import UnknownNameError
from trainables.config import ConfigError
from trainables.errors import InputError, SSLSearchError
from trainables.loop import NonFiniteLossError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SpecError([("a.yaml", 3, "params/x", "bad")]), 2),
        (ConfigError("mask/ratio", "bad"), 2),
        (UnknownNameError("unknown probe 'x'"), 2),
        (InputError("--set x: expected key.path=value"), 2),
        (RunError("no trial completed"), 1),
        (RunInterrupted("stopped"), 130),
        (NonFiniteLossError(1, 2, float("nan")), 2),
    ],
)
def test_every_error_derives_from_the_base_with_its_exit_code(error, code):
    assert isinstance(error, SSLSearchError) and error.exit_code == code
    assert error.lines() and all("\n" not in line for line in error.lines())


def test_a_spec_error_is_one_line_per_problem_in_file_order():
    err = SpecError(
        [("b.yaml", 2, "k", "second"), ("a.yaml", 0, "", "first"), ("b.yaml", 1, "", "x")]
    )
    assert err.lines() == ["a.yaml first", "b.yaml:1 x", "b.yaml:2 k: second"]


def test_problem_keys_derive_from_the_path_and_lines_from_the_nearest_parent():
    problems = Problems("s.yaml", {("params",): 4, ("params", "m/r"): 5, ("inc",): ("b.yaml", 9)})
    problems.add(("params", "m/r", "low"), "bad low")
    problems.add(("study", "objective", 1, "metric"), "no probe")
    problems.add(("inc", "x"), "from the base")
    assert problems.items == [
        ("s.yaml", 5, "params/m/r/low", "bad low"),
        ("s.yaml", 0, "study/objective[1]/metric", "no probe"),
        ("b.yaml", 9, "inc/x", "from the base"),
    ]
    assert key_of(("enqueue", 0, "mask/ratio")) == "enqueue[0]/mask/ratio"


@pytest.mark.parametrize("text", ["1e-4", "1E5", "1.0e5", "2.5e-3", "-3e+2", "4.5", "7"])
def test_the_number_hint_is_what_yaml_reads_as_that_number(text):
    """The advice for a number YAML read as text is checked against YAML itself."""
    import yaml

    from trainables.errors import shown

    hint = shown(text)
    fix = hint.rpartition("write ")[2].rstrip(")").removesuffix(" unquoted")
    assert yaml.safe_load(text if "unquoted" in hint else fix) == float(text)
    assert isinstance(yaml.safe_load(f"'{text}'"), str)  # what the user wrote: quoted text


@pytest.mark.parametrize("text", ["inf", "nan", "-inf", "fast", ""])
def test_no_number_hint_for_what_is_no_yaml_number(text):
    from trainables.errors import shown

    assert shown(text) == repr(text)
