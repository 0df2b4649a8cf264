"""Loading and validating space files: every error names file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from spaces import SpecError, load_spec, shipped_spaces
from spaces.model import CategoricalParam, FixedParam, FloatParam, IntParam


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.lines()


def test_parses_every_param_type(tmp_path):
    path = write(
        tmp_path,
        """
        params:
          mask/ratio: {type: float, low: 0.1, high: 0.9, step: 0.1}
          optim/lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          optim/batch_size: {type: int, low: 32, high: 128, step: 32}
          loss/mae/norm_pix: {type: categorical, choices: [false, true]}
          train/seed: {type: fixed, value: 3}
        """,
    )
    spec = load_spec(path)
    assert spec.params == (
        FloatParam("mask/ratio", 0.1, 0.9, False, 0.1),
        FloatParam("optim/lr", 1e-4, 1e-2, True, None),
        IntParam("optim/batch_size", 32, 128, False, 32),
        CategoricalParam("loss/mae/norm_pix", (False, True)),
        FixedParam("train/seed", 3),
    )


def test_low_above_high_names_file_line_and_key(tmp_path):
    path = write(
        tmp_path,
        """
        budget: {trials: 2}
        params:
          optim/lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          mask/ratio: {type: float, low: 0.9, high: 0.2}
        """,
    )
    assert problems(path) == [f"{path}:4 params/mask/ratio: low (0.9) > high (0.2)"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "params:\n  optim/lr: {type: float, low: 0, high: 1, log: true}\n",
            ":2 params/optim/lr/low: log scale needs low > 0, got 0",
        ),
        (
            "params:\n  mask/strategy: {type: categorical, choices: []}\n",
            ":2 params/mask/strategy/choices: expected a non-empty list",
        ),
        (
            "params:\n  mask/ratio: {type: floaty, low: 0, high: 1}\n",
            ":2 params/mask/ratio/type: expected one of float, int, categorical, grid, fixed;"
            " got 'floaty'",
        ),
        (
            "params:\n  mask/ratio: {type: float, low: 0.1, hihg: 0.9}\n",
            ":2 params/mask/ratio/hihg: unknown key (did you mean 'high'?)",
        ),
        ("budgte: {trials: 3}\n", ":1 budgte: unknown key (did you mean 'budget'?)"),
        (
            "budget: {trials: 0}\n",
            ":1 budget/trials: expected an integer >= 1, got 0",
        ),
        (
            "budget: {noise_seeds: 101}\n",
            ":1 budget/noise_seeds: expected an integer in 0..100 (re-runs of the best"
            " configuration), got 101",
        ),
        (
            "budget: {noise_seeds: true}\n",
            ":1 budget/noise_seeds: expected an integer in 0..100",
        ),
        (
            "budget:\n  trials: 3\n  repeated_config: next\n",
            ":3 budget/repeated_config: expected one of next_seed, same_seed, got 'next'",
        ),
        (
            "budget: {max_failures: -1}\n",
            ":1 budget/max_failures: expected an integer in 0..1,000,000 (retries",
        ),
        (
            "params:\n  mask/ratio: {type: float, low: a, high: 0.9}\n",
            ":2 params/mask/ratio/low: expected a number, got 'a'",
        ),
    ],
)
def test_bad_values_are_located(tmp_path, body, expected):
    path = write(tmp_path, body)
    lines = problems(path)
    assert len(lines) == 1
    assert lines[0].startswith(str(path) + expected)


def test_unknown_masking_strategy_lists_valid_ones(tmp_path):
    path = write(
        tmp_path,
        """
        params:
          mask/strategy: {type: categorical, choices: [random, checkerboard]}
        """,
    )
    (line,) = problems(path)
    assert line.startswith(
        f"{path}:2 params/mask/strategy: unknown masking strategy 'checkerboard'"
    )
    assert "valid: attention, block, colour_noise, grid, inverse_block, random" in line


def test_unknown_trial_key_in_a_param_names_the_param(tmp_path):
    path = write(tmp_path, "params:\n  optim/lrr: {type: float, low: 0.001, high: 0.01}\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:2 params/optim/lrr: unknown key (did you mean 'lr'?)")


def test_objective_metric_must_be_reported_by_a_probe(tmp_path):
    path = write(tmp_path, "study:\n  objective: {metric: linear_top1, direction: maximize}\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:2 study/objective/metric: no probe reports 'linear_top1'")
    assert "knn_top1" in line


def test_python_tags_are_refused(tmp_path):
    path = write(tmp_path, "description: !!python/object/apply:os.system ['true']\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:1 ")
    assert "unsafe tag refused" in line


def test_missing_file_is_named(tmp_path):
    assert problems(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'} no such file"]


def test_all_problems_are_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        """
        budget: {trials: -1, epochs: 2}
        params:
          a/b: {type: float, low: 2, high: 1}
          c/d: {type: categorical, choices: []}
        """,
    )
    lines = problems(path)
    assert [line.split(" ")[1] for line in lines] == [
        "budget/trials:",
        "params/a/b:",
        "params/c/d/choices:",
    ]


def test_overrides_are_merged_before_validation(tmp_path):
    path = write(tmp_path, "budget: {trials: 5, epochs: 3}\n")
    spec = load_spec(path, overrides={"budget.trials": 2, "study.pruner.name": "none"})
    assert spec.budget.trials == 2 and spec.budget.epochs == 3
    assert spec.study.pruner.name == "none"


def test_a_problem_in_an_override_is_located_at_the_set_not_the_file(tmp_path):
    path = write(
        tmp_path,
        """
        budget: {trials: 5, epochs: 3}
        data: {name: digits, val_fraction: 0.25}
        probe:
          names: [knn]
        optim: {batch_size: 1}
        """,
    )
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides={"data.val_fraction": 3, "probe.names": ["knn", "rankmee"]})
    assert info.value.lines() == [
        f"{path}:5 optim/batch_size: expected >= 2",  # the file's own, at its line
        f"{path} (override) data/val_fraction: expected a share in (0, 1), got 3.0",
        f"{path} (override) probe/names[1]: unknown probe 'rankmee' (did you mean 'rankme'?); "
        "valid: align_uniform, alpha_req, knn, lidar, linear, rankme",
    ]
    # a section the file does not have, misspelt on the command line: at the override
    with pytest.raises(SpecError) as info:
        load_spec(path, overrides={"optim.batch_size": 8, "dat.seed": 1})
    assert info.value.lines()[0].startswith(f"{path} (override) dat: unknown key")


def test_unknown_pruner_is_reported(tmp_path):
    path = write(tmp_path, "study:\n  pruner: {name: medain}\n")
    (line,) = problems(path)
    assert line.startswith(
        f"{path}:2 study/pruner: unknown pruner 'medain' (did you mean 'median'?)"
    )


@pytest.mark.parametrize("name", sorted(shipped_spaces()))
def test_shipped_spaces_validate(name):
    spec = load_spec(shipped_spaces()[name])
    assert spec.description, f"{name}.yaml needs a description"
    text = shipped_spaces()[name].read_text(encoding="utf-8")
    assert text.startswith("#"), f"{name}.yaml needs a header comment with its question"
