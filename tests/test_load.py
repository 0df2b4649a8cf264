"""Reading space files: include:, duplicate keys, located YAML errors, overrides."""

from __future__ import annotations

import textwrap

import pytest

from spaces import SpecError, load_spec
from spaces.load import apply_overrides, load_with_lines


def write(path, text):
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def test_include_merges_a_base_and_locates_errors_in_either_file(tmp_path):
    write(
        tmp_path / "base.yaml",
        """
        description: base
        budget: {trials: 5, epochs: 3}
        params:
          mask/ratio: {type: float, low: 0.1, high: 0.9}
          optim/lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        """,
    )
    child = write(
        tmp_path / "child.yaml",
        """
        include: base.yaml
        budget: {trials: 2}
        params:
          mask/ratio: {type: fixed, value: 0.75}
          optim/lr: null
        """,
    )
    spec = load_spec(child)
    assert spec.budget.trials == 2 and spec.budget.epochs == 3
    assert [p.name for p in spec.params] == ["mask/ratio"]
    assert spec.description == "base"
    write(
        tmp_path / "base.yaml",
        """
        budget: {trials: 5, epochs: 3}
        params:
          mask/ratio: {type: float, low: 0.9, high: 0.1}
        """,
    )
    write(child, "include: base.yaml\nbudget: {trials: 0}\n")
    with pytest.raises(SpecError) as info:
        load_spec(child)
    assert info.value.lines() == [
        f"{tmp_path / 'base.yaml'}:3 params/mask/ratio: low (0.9) > high (0.1)",
        f"{child}:2 budget/trials: expected an integer >= 1, got 0",
    ] or sorted(info.value.lines()) == sorted(
        [
            f"{tmp_path / 'base.yaml'}:3 params/mask/ratio: low (0.9) > high (0.1)",
            f"{child}:2 budget/trials: expected an integer >= 1, got 0",
        ]
    )


def test_include_cycles_and_missing_bases_are_errors(tmp_path):
    a = write(tmp_path / "a.yaml", "include: b.yaml\n")
    write(tmp_path / "b.yaml", "include: a.yaml\n")
    with pytest.raises(SpecError, match=r"b.yaml:1 include: include cycle: a.yaml -> b.yaml -> a"):
        load_spec(a)
    d = write(tmp_path / "d.yaml", "include: d.yaml\n")
    with pytest.raises(SpecError, match=r"d.yaml:1 include: d.yaml includes itself"):
        load_spec(d)
    c = write(tmp_path / "c.yaml", "include: nope.yaml\n")
    with pytest.raises(SpecError, match=r"c.yaml:1 include: no such file"):
        load_spec(c)


def test_duplicate_keys_are_refused(tmp_path):
    path = write(
        tmp_path / "d.yaml",
        """
        params:
          mask/ratio: {type: float, low: 0.1, high: 0.9}
          mask/ratio: {type: float, low: 0.2, high: 0.9}
        """,
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.lines() == [f"{path}:3 params/mask/ratio: duplicate key"]


def test_lines_point_at_each_key_and_list_item():
    data, lines = load_with_lines("a:\n  b: [1, 2]\n  c:\n    - x\n", "f.yaml")
    assert data == {"a": {"b": [1, 2], "c": ["x"]}}
    assert lines[("a", "b")] == 2 and lines[("a", "c", "0")] == 4


def test_overrides_set_nested_keys_in_a_copy():
    data = {"budget": {"trials": 4}, "params": {}}
    out = apply_overrides(data, {"budget.epochs": 2, "study.sampler.name": "random"})
    assert out == {
        "budget": {"trials": 4, "epochs": 2},
        "params": {},
        "study": {"sampler": {"name": "random"}},
    }
    assert data == {"budget": {"trials": 4}, "params": {}}  # the input is untouched
