"""Cross-checks of a parsed spec: conditions, grids, several objectives."""

from __future__ import annotations

import optuna
import pytest
import yaml

from spaces import SpecError, define_by_run, parse_spec
from spaces.compile import grid_search_space, grid_size
from spaces.study import build_sampler


def spec_of(data, **kw):
    return parse_spec(data, source="inline", **kw)


CONDITIONAL = {
    "params": {
        "mask/strategy": {"type": "categorical", "choices": ["random", "block", "colour_noise"]},
        "mask/block/aspect": {
            "type": "float",
            "low": 0.3,
            "high": 1.0,
            "when": {"mask/strategy": "block"},
        },
        "mask/colour_noise/colour": {
            "type": "categorical",
            "choices": ["red", "blue"],
            "when": {"mask/strategy": ["colour_noise"]},
        },
        "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
    }
}


def test_conditional_parameters_exist_only_when_their_condition_holds():
    fn = define_by_run(spec_of(CONDITIONAL))
    cfg = fn(
        optuna.trial.FixedTrial(
            {"mask/strategy": "block", "mask/block/aspect": 0.5, "mask/ratio": 0.4}
        )
    )
    assert cfg["mask"] == {"strategy": "block", "block": {"aspect": 0.5}, "ratio": 0.4}
    cfg = fn(optuna.trial.FixedTrial({"mask/strategy": "random", "mask/ratio": 0.4}))
    assert cfg["mask"] == {"strategy": "random", "ratio": 0.4}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(40):
        trial = study.ask()
        fn(trial)
        strategy = trial.params["mask/strategy"]
        seen.add(strategy)
        assert ("mask/block/aspect" in trial.params) == (strategy == "block")
        assert ("mask/colour_noise/colour" in trial.params) == (strategy == "colour_noise")
        study.tell(trial, 0.0)
    assert seen == {"random", "block", "colour_noise"}


@pytest.mark.parametrize(
    ("when", "fragment"),
    [
        ({"mask/strategi": "block"}, "condition on 'mask/strategi', which is not a parameter"),
        ({"mask/ratio": 0.5}, "condition on 'mask/ratio', declared after this one"),
        ({"mask/strategy": "checkerboard"}, "'checkerboard' is not a value of 'mask/strategy'"),
    ],
)
def test_bad_conditions_are_located(when, fragment):
    data = {
        "params": {
            "mask/strategy": {"type": "categorical", "choices": ["random", "block"]},
            "mask/block/aspect": {"type": "float", "low": 0.3, "high": 1.0, "when": when},
            "mask/ratio": {"type": "float", "low": 0.1, "high": 0.9},
        }
    }
    with pytest.raises(SpecError) as info:
        spec_of(data)
    (line,) = info.value.lines()
    assert f"params/mask/block/aspect/when/{next(iter(when))}: {fragment}" in line


def grid_spec(**budget):
    return {
        "study": {"sampler": {"name": "grid", "seed": 0, "repeats": 3}, "pruner": "none"},
        "budget": budget,
        "params": {
            "mask/ratio": {"type": "grid", "values": [round(0.1 * i, 1) for i in range(1, 10)]}
        },
    }


def test_grid_with_repeats_runs_every_point_with_each_seed():
    spec = spec_of(grid_spec(epochs=1))
    assert grid_size(spec) == 27 and spec.budget.trials == 27
    assert grid_search_space(spec)["repeat"] == [0, 1, 2]
    study = optuna.create_study(
        sampler=build_sampler(
            "grid", spec.study.sampler.options, search_space=grid_search_space(spec)
        )
    )
    fn = define_by_run(spec)
    seen = []
    for _ in range(27):
        trial = study.ask()
        cfg = fn(trial)
        seen.append((cfg["mask"]["ratio"], cfg["train"]["seed"]))
        study.tell(trial, 0.0)
    assert sorted(seen) == sorted((round(0.1 * i, 1), s) for i in range(1, 10) for s in range(3))


def test_grid_trials_must_match_the_grid():
    with pytest.raises(SpecError) as info:
        spec_of(grid_spec(trials=30))
    assert (
        "budget/trials: the grid has 27 points (values x repeats); trials must be at most 27"
        in str(info.value)
    )
    assert spec_of(grid_spec(trials=4)).budget.trials == 4  # part of the grid
    bad = grid_spec()
    bad["params"]["optim/lr"] = {"type": "float", "low": 1e-4, "high": 1e-2}
    with pytest.raises(SpecError, match="params/optim/lr: the grid sampler needs listed values"):
        spec_of(bad)


def test_multi_objective_needs_a_capable_sampler():
    objectives = [
        {"metric": "knn_top1", "direction": "maximize"},
        {"metric": "trial_time_s", "direction": "minimize"},
    ]
    ok = spec_of(
        {
            "study": {
                "objective": objectives,
                "sampler": {"name": "nsga2", "seed": 0},
                "pruner": "none",
            }
        }
    )
    assert [o.metric for o in ok.study.objectives] == ["knn_top1", "trial_time_s"]
    with pytest.raises(SpecError) as info:
        spec_of({"study": {"objective": objectives, "sampler": {"name": "cmaes"}}})
    assert "study/sampler: 'cmaes' handles one objective" in str(info.value)


def _ratio_notes(tmp_path, ratio, **more):
    from spaces import load_spec

    data = {"budget": {"trials": 20}, "params": {"mask/ratio": ratio}, **more}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return tuple(n for n in load_spec(tmp_path / "s.yaml").notes if "/pruner/" not in n)


def test_a_ratio_finer_than_the_token_grid_is_noted_where_it_is_written(tmp_path):
    # the default encoder on 8x8 digits has 16 tokens: 0.1 .. 0.9 masks 2 .. 14 of them
    [note] = _ratio_notes(tmp_path, {"type": "float", "low": 0.1, "high": 0.9})
    assert note.startswith(f"{tmp_path / 's.yaml'}:4 params/mask/ratio: a ratio masks ")
    assert "round(16 x ratio) of the encoder's 16 patch tokens, so 0.1 .. 0.9 makes 13 " in note
    assert "(2 to 14 tokens) for 20 trials" in note
    suggested = note.rsplit("; ", 1)[1].removesuffix(" names each mask once")
    assert suggested == "{low: 0.125, high: 0.875, step: 0.0625}"
    # as suggested: each value one mask, no note
    assert _ratio_notes(tmp_path, {"type": "float", **yaml.safe_load(suggested)}) == ()
    # a step finer than the grid names masks twice too
    assert len(_ratio_notes(tmp_path, {"type": "float", "low": 0.1, "high": 0.9, "step": 0.05}))
    # 4x4 patches on 32x32 shapes: 64 tokens, 52 masks for 20 trials
    shapes = {"data": {"name": "shapes"}, "model": {"name": "vit_tiny_32"}}
    assert _ratio_notes(tmp_path, {"type": "float", "low": 0.1, "high": 0.9}, **shapes) == ()


@pytest.mark.parametrize(
    "more",
    [
        {"budget": {"trials": 13}},  # no more trials than masks
        {"loss": {"name": "simclr"}},  # nothing masks tokens
        {"mask": {"schedule": "linear", "ratio_end": 0.2}},  # the ratio moves every step
        {"model": {"name": "vit_tiny_patch16_224", "patch_size": 2}},  # timm: tokens not known
    ],
)
def test_no_note_where_fine_ratios_differ_or_the_grid_is_unknown(tmp_path, more):
    assert _ratio_notes(tmp_path, {"type": "float", "low": 0.1, "high": 0.9}, **more) == ()


def test_listed_ratios_that_make_one_mask_are_noted(tmp_path):
    grid = {"study": {"sampler": {"name": "grid"}}, "budget": {"trials": 5}}
    values = {"type": "grid", "values": [0.1, 0.11, 0.5, 0.47, 0.9]}
    [note] = _ratio_notes(tmp_path, values, **grid)
    assert note.endswith(
        "patch tokens, so 0.1, 0.11 mask 2; 0.5, 0.47 mask 8 tokens: one mask, trained as "
        "different configurations"
    )
    values["values"] = [0.125, 0.5, 0.875]
    assert _ratio_notes(tmp_path, values, **{**grid, "budget": {"trials": 3}}) == ()
    choices = {"type": "categorical", "choices": [0.3, 0.31]}  # a choice between one mask
    assert "0.3, 0.31 mask 5 tokens" in _ratio_notes(tmp_path, choices)[0]


def test_every_problem_of_a_trial_config_is_reported_at_once(tmp_path):
    from spaces import load_spec

    path = tmp_path / "s.yaml"
    path.write_text(
        "data: {name: digits, val_fraction: 1.5}\n"
        "probe: {names: [knn], every: 0}\n"
        "params:\n"
        "  optim/batch_size: {type: categorical, choices: [0, 32]}\n"
        "  optim/lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.lines() == [
        f"{path}:1 data/val_fraction: expected a share in (0, 1), got 1.5",
        f"{path}:2 probe/every: expected >= 1, got 0",
        f"{path}:4 params/optim/batch_size: expected >= 2",
    ]


def test_rankme_as_the_objective_of_an_augmentation_search_is_noted(tmp_path):
    from spaces import load_spec

    def notes(objective, params):
        data = {
            "study": {"objective": {"metric": objective}},
            "probe": {"names": ["knn", "rankme"]},
            "params": params,
        }
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        return load_spec(tmp_path / "s.yaml").notes

    jitter = {"aug/color_jitter/strength": {"type": "float", "low": 0.1, "high": 1.0}}
    [note] = notes("rankme", jitter)
    assert note.startswith(f"{tmp_path / 's.yaml'}:3 study/objective/metric: RankMe counts ")
    assert "(aug/color_jitter/strength) a weaker one keeps a nuisance" in note
    assert notes("knn_top1", jitter) == ()  # a labelled objective
    lr = {"optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}
    assert notes("rankme", lr) == ()  # no augmentation searched: RankMe's own family


def test_a_ratio_that_masks_no_token_is_noted(tmp_path):
    from spaces import load_spec

    def notes(**sections):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(sections, sort_keys=False))
        return [n for n in load_spec(tmp_path / "s.yaml").notes if "= 0 of" in n]

    # 16 tokens on 8x8 digits: 0.03 x 16 rounds to 0 (a trial's loss is 0, no gradient)
    [note] = notes(mask={"ratio": 0.03})
    assert note == (
        f"{tmp_path / 's.yaml'}:2 mask/ratio: a ratio of 0.03 masks round(16 x 0.03) = 0 of "
        "the encoder's 16 patch tokens: 'mae' reconstructs nothing, so its reconstruction "
        "term is 0 and sends the encoder no gradient (a baseline, if that is meant)"
    )
    ratio = {"type": "float", "low": 0.0, "high": 0.5, "step": 0.0625}  # its low end
    assert notes(params={"mask/ratio": ratio})[0].startswith(
        f"{tmp_path / 's.yaml'}:2 params/mask/ratio: a ratio of 0 masks"
    )
    assert notes(mask={"ratio": 0.04}) == []  # one token
    assert notes(mask={"ratio": 0.0, "schedule": "linear", "ratio_end": 0.5}) == []  # ramps up
    assert notes(mask={"ratio": 0.0}, loss={"name": "simclr"}) == []  # masks nothing anyway


def test_a_ratio_end_no_schedule_reads_is_refused(tmp_path):
    from spaces import SpecError, load_spec

    def check(**sections):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(sections, sort_keys=False))
        return load_spec(tmp_path / "s.yaml")

    with pytest.raises(SpecError) as err:
        check(mask={"ratio": 0.5, "ratio_end": 0.8})
    assert str(err.value) == (
        f"{tmp_path / 's.yaml'}:3 mask/ratio_end: the masking schedule is 'constant' in every "
        "trial, and a constant schedule never reads ratio_end; set mask.schedule (linear, "
        "cosine, step) or drop ratio_end"
    )
    # read where a schedule moves the ratio, in some trials or all
    check(mask={"ratio": 0.5, "ratio_end": 0.8, "schedule": "cosine"})
    schedule = {"type": "categorical", "choices": ["constant", "linear"]}
    check(mask={"ratio": 0.5, "ratio_end": 0.8}, params={"mask/schedule": schedule})
    # an objective that masks nothing reads no mask section at all
    check(mask={"ratio": 0.5, "ratio_end": 0.8}, loss={"name": "simclr"})


@pytest.mark.parametrize(
    ("pruner", "budget", "expected"),
    [
        (
            {"n_warmup_steps": 12},
            {"trials": 20, "epochs": 12},
            "study/pruner/n_warmup_steps: the median pruner decides from epoch 12 on, and a "
            "trial trains 12 (budget/epochs): it stops no trial early",
        ),
        (
            {"n_startup_trials": 10},
            {"trials": 8, "epochs": 12},
            "study/pruner/n_startup_trials: the median pruner decides once 10 trials have "
            "finished, and the study runs 8 (budget/trials): it stops no trial",
        ),
        ({"n_warmup_steps": 11, "n_startup_trials": 7}, {"trials": 8, "epochs": 12}, None),
    ],
)
def test_a_pruner_that_can_stop_no_trial_is_noted(tmp_path, pruner, budget, expected):
    from spaces import load_spec

    data = {"study": {"pruner": {"name": "median", **pruner}}, "budget": budget}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    notes = load_spec(tmp_path / "s.yaml").notes
    assert [n.split(" ", 1)[1] for n in notes] == ([expected] if expected else [])
