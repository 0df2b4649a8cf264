"""parse_trial_config: registry names and options checked with key paths."""

from __future__ import annotations

import pytest

from trainables import ConfigError, TrialConfig, parse_trial_config


@pytest.mark.parametrize(
    ("config", "path", "fragment"),
    [
        ({"optim": {"lrr": 1.0}}, "optim/lrr", "did you mean 'lr'"),
        ({"mask": {"strategy": "nope"}}, "mask/strategy", "valid: attention, block, colour_noise"),
        ({"aug": {"blur": {}}}, "aug/blur", "unknown augmentation op 'blur'"),
        ({"probe": {"names": ["knnn"]}}, "probe/names[0]", "did you mean 'knn'"),
        ({"model": {"name": "not_a_model_xyz"}}, "model/name", "unknown encoder"),
        ({"mask": {"ratio": 0.99}}, "mask/ratio", "[0, 0.95]"),
        ({"data": {"name": "imagenet"}}, "data/name", "valid: cifar, digits, image_folder"),
        ({"mask": {"random": {"sizee": 2}}}, "mask/random/sizee", "unknown option"),
        ({"aug": {"hflip": {"q": 0.5}}}, "aug/hflip/q", "valid: p"),
        ({"probe": {"knn": {"kk": 3}}}, "probe/knn/kk", "did you mean 'k'"),
        ({"probe": {"names": ["knn", "rankme", "knn"]}}, "probe/names[2]", "'knn' is listed twice"),
        (
            {"mask": {"strategy": "attention", "attention": {"mode": "top"}}},
            "mask/attention/mode",
            "high, low, hide_show",
        ),
        (
            {"mask": {"strategy": "attention", "attention": {"hide": 1.5}}},
            "mask/attention/hide",
            "in [0, 1]",
        ),
        (
            {"mask": {"strategy": "colour_noise", "colour_noise": {"colour": "pink"}}},
            "mask/colour_noise/colour",
            "red, blue",
        ),
        ({"model": {"name": "resnet_small"}}, "model/name", "'mae' masks patch tokens"),
        ({"model": {"patch_size": 3}}, "model/patch_size", "does not tile the 8x8 images"),
        (
            {"model": {"name": "resnet_small", "depth": 2}, "loss": {"name": "simclr"}},
            "model/depth",
            "'resnet_small' takes no depth; the sizes apply to ViTs only",
        ),
        (
            {"model": {"name": "resnet18", "patch_size": 4}, "loss": {"name": "simclr"}},
            "model/patch_size",
            "'resnet18' takes no patch_size",
        ),
        (
            {"data": {"name": "shapes", "options": {"image_size": 20}}, "model": {"patch_size": 8}},
            "model/patch_size",
            "patch size 8 does not tile the 20x20 images of data 'shapes'; use a divisor of 20",
        ),
        (
            {"model": {"patch_size": 1}, "loss": {"name": "hybrid", "hybrid": {"norm_pix": True}}},
            "loss/hybrid/norm_pix",
            "a 1x1 patch (model/patch_size 1) of 1 channel has one value",
        ),
        ({"model": {"name": "resnet18"}, "loss": {"name": "hybrid"}}, "model/name", "ViT"),
        (
            {
                "model": {"name": "vit_medium_patch16_gap_256"},
                "mask": {"strategy": "attention"},
                "probe": {"feature": "mean"},
            },
            "mask/strategy",
            "'vit_medium_patch16_gap_256' (VisionTransformer) has no class token",
        ),
        # two options in order, which limits alone cannot say
        (
            {"aug": {"gaussian_blur": {"sigma_min": 3.0, "sigma_max": 1.0}}},
            "aug/gaussian_blur/sigma_min",
            "sigma_min (3.0) must be <= sigma_max (1.0)",
        ),
        (  # against the other's default (min_size 0.05)
            {"mask": {"strategy": "block", "block": {"max_size": 0.01}}},
            "mask/block/max_size",
            "min_size (0.05) must be <= max_size (0.01)",
        ),
        (
            {"mask": {"strategy": "inverse_block", "inverse_block": {"aspect": 2.0}}},
            "mask/inverse_block/aspect",
            "expected a value in (0, 1], got 2.0",
        ),
        # the probes' feature must exist on the encoder
        (
            {"model": {"name": "resnet_small"}, "loss": {"name": "simclr"}},
            "probe/feature",
            "'cls' reads a ViT's tokens; 'resnet_small' is not a ViT: use feature: pooled",
        ),
        (
            {
                "model": {"name": "resnet18"},
                "loss": {"name": "simclr"},
                "probe": {"feature": "mean"},
            },
            "probe/feature",
            "'mean' reads a ViT's tokens; 'resnet18' is not a ViT",
        ),
        (
            {"model": {"name": "vit_medium_patch16_gap_256"}},
            "probe/feature",
            "'cls' reads the class token; 'vit_medium_patch16_gap_256' has none",
        ),
        # AdamW refuses these only when a trial builds it; the schedule makes no sense
        ({"optim": {"lr": 0.0}}, "optim/lr", "expected a value in (0, inf), got 0.0"),
        ({"optim": {"weight_decay": -0.1}}, "optim/weight_decay", "in [0, inf), got -0.1"),
        ({"optim": {"beta1": 1.0}}, "optim/beta1", "in [0, 1), got 1.0"),
        ({"optim": {"beta2": -0.5}}, "optim/beta2", "in [0, 1), got -0.5"),
        ({"optim": {"min_lr_ratio": 1.5}}, "optim/min_lr_ratio", "in [0, 1], got 1.5"),
        ({"optim": {"warmup_epochs": -1}}, "optim/warmup_epochs", "in [0, inf), got -1"),
        ({"optim": {"grad_clip": -1}}, "optim/grad_clip", "[0, inf) (0: no clipping)"),
        # a schedule that ends before the trial does
        (
            {"train": {"epochs": 30, "horizon": 20}},
            "train/horizon",
            "the schedules' span (20) ends before the trial does (30 epochs, budget/epochs)",
        ),
        # widths that heads do not split: timm's assertion, in the driver, was a traceback
        ({"model": {"embed_dim": 98}}, "model/embed_dim", "embed_dim 98 does not split into 4"),
        ({"model": {"num_heads": 5}}, "model/num_heads", "embed_dim 96 does not split into 5"),
        ({"model": {"decoder_dim": 66}}, "model/decoder_dim", "decoder_dim 66 does not split"),
        ({"model": {"decoder_heads": 0}}, "model/decoder_heads", "an integer >= 1, got 0"),
        (  # a timm ViT's patch is timm's: it is built (on the meta device) to know it
            {"model": {"name": "vit_tiny_patch16_224"}},
            "model/patch_size",
            "patch size 16 does not tile the 8x8 images of data 'digits'",
        ),
        (
            {"model": {"name": "vit_tiny_patch16_224", "patch_size": 2, "embed_dim": 100}},
            "model",
            "timm cannot build 'vit_tiny_patch16_224' for 8x8 images of 1 channel(s) with",
        ),
    ],
)
def test_bad_values_name_the_key_path(config, path, fragment):
    with pytest.raises(ConfigError) as info:
        parse_trial_config(config)
    assert info.value.path == path
    assert fragment in str(info.value)


def test_parsing_alone_does_not_check_registry_names():
    # TrialConfig.from_dict is the leaf parser (keys and types); names are checked here
    cfg = TrialConfig.from_dict({"mask": {"strategy": "nope"}})
    assert cfg.mask.strategy == "nope"
    with pytest.raises(ConfigError):
        parse_trial_config(cfg.to_dict())


def test_features_and_ordered_options_that_exist_pass():
    cnn = {"model": {"name": "resnet_small"}, "loss": {"name": "simclr"}}
    parse_trial_config({**cnn, "probe": {"feature": "pooled"}})
    big = {"name": "shapes", "options": {"image_size": 32}}  # 16-pixel patches tile 32 pixels
    gap = {"model": {"name": "vit_medium_patch16_gap_256"}, "data": big}
    for feature in ("mean", "pooled"):
        parse_trial_config({**gap, "probe": {"feature": feature}})
    parse_trial_config({"aug": {"gaussian_blur": {"sigma_min": 1.0, "sigma_max": 1.0}}})
    parse_trial_config({"mask": {"strategy": "block", "block": {"aspect": 1.0}}})


def test_attention_masking_is_checked_only_where_something_masks():
    # a CNN with a two-view objective: nothing is masked, the strategy does not apply
    cfg = {
        "model": {"name": "resnet_small"},
        "loss": {"name": "simclr"},
        "probe": {"feature": "pooled"},
    }
    parse_trial_config({**cfg, "mask": {"strategy": "attention"}})
    parse_trial_config({"model": {"name": "vit_digits"}, "mask": {"strategy": "attention"}})
    parse_trial_config(
        {
            "model": {"name": "vit_tiny_patch16_224", "patch_size": 4},
            "mask": {"strategy": "attention"},
        }
    )


def test_patch_geometry_is_checked_where_the_source_says_its_images():
    # what the refusals above prevent: a trial that fails to build, or trains on NaN
    parse_trial_config({"model": {"patch_size": 4}})  # 4 tiles the digits' 8 pixels
    parse_trial_config({"model": {"patch_size": 1}, "loss": {"mae": {"norm_pix": False}}})
    # three channels make a 1x1 patch three values: a variance exists
    shapes = {"name": "shapes", "options": {"image_size": 16}}
    parse_trial_config(
        {"data": shapes, "model": {"patch_size": 1}, "loss": {"mae": {"norm_pix": True}}}
    )
    # a source that does not declare its images (npz: known only once loaded) is not guessed
    parse_trial_config(
        {"data": {"name": "npz", "options": {"path": __file__}}, "model": {"patch_size": 3}}
    )


def test_config_problems_finds_every_section_s_problem_at_once():
    from trainables.validate import config_problems

    bad = {
        "data": {"name": "digitz"},
        "aug": {"hflipp": {}},
        "loss": {"mae": {"norm_pixx": True}},
        "probe": {"names": ["knn", "rankmee"], "every": 0},
        "optim": {"lr": -1.0},
    }
    cfg, found = config_problems(bad)
    assert cfg is not None and cfg.optim.lr == -1.0
    assert [e.path for e in found] == [
        "data/name",
        "aug/hflipp",
        "loss/mae/norm_pixx",
        "probe/names[1]",
        "probe/every",
        "optim/lr",
    ]
    assert "did you mean 'digits'" in found[0].message
    # what a trial raises: the first of them
    with pytest.raises(ConfigError) as info:
        parse_trial_config(bad)
    assert (info.value.path, info.value.message) == (found[0].path, found[0].message)
    # a sound config: no problems
    cfg, found = config_problems({"mask": {"ratio": 0.5}})
    assert found == [] and cfg.mask.ratio == 0.5
    # keys or types wrong: the parser's one problem, no config
    cfg, found = config_problems({"optim": {"lrr": 1.0}})
    assert cfg is None and [e.path for e in found] == ["optim/lrr"]


def test_config_problems_finds_every_problem_within_a_section():
    from trainables.validate import config_problems

    bad = {
        "aug": {
            "colour_jitter": {},
            "hflip": {"pp": 0.5, "p": 2.0},
            "blurr": {"p": 1.0},
            "gaussian_blur": {"sigma_min": 2.0, "sigma_max": 1.0},
        },
        "mask": {"strategy": "block", "block": {"min_size": 0.5, "max_size": 0.1, "aspectt": 1}},
        "loss": {"name": "hybrid", "weights": {"mae": -1, "contrastiv": 1}},
        "train": {"precision": "fp8", "device": "tpu"},
        "optim": {"batch_size": 1},
    }
    found = [(e.path, e.message) for e in config_problems(bad)[1]]
    paths = [path for path, _ in found]
    assert paths == [
        "mask/block/aspectt",  # an unknown option: the order of sizes is not judged then
        "aug/colour_jitter",  # the unknown ops first, in the file's order
        "aug/blurr",
        "aug/hflip/pp",
        "aug/hflip/p",
        "aug/gaussian_blur/sigma_min",
        "loss/weights/mae",
        "loss/weights/contrastiv",
        "train/precision",
        "train/device",
        "optim/batch_size",
    ]
    assert "did you mean 'color_jitter'" in found[1][1]
    assert found[5][1] == "sigma_min (2.0) must be <= sigma_max (1.0)"
    # a trial raises the first of them
    with pytest.raises(ConfigError) as info:
        parse_trial_config(bad)
    assert info.value.path == paths[0]
    # with the unknown option gone, the sizes' order is judged
    bad["mask"]["block"].pop("aspectt")
    assert [e.path for e in config_problems(bad)[1]][:2] == [
        "mask/block/min_size",
        "aug/colour_jitter",
    ]


def test_checks_across_sections_wait_for_the_sections_they_read():
    from trainables.validate import config_problems

    # a CNN under a masking objective is refused, next to an unrelated probe problem
    cnn = {"model": {"name": "resnet_small"}, "probe": {"every": 0}}
    assert [e.path for e in config_problems(cnn)[1]] == ["probe/every", "model/name"]
    # with the objective's name wrong, whether the encoder fits it is not asked
    cnn["loss"] = {"name": "maee"}
    assert [e.path for e in config_problems(cnn)[1]] == ["loss/name", "probe/every"]
    # the patches against the images: only with a patch size that is a size
    tiles = {"model": {"patch_size": 3}, "data": {"val_fraction": 0.5}}
    assert [e.path for e in config_problems(tiles)[1]] == ["model/patch_size"]
    tiles["data"]["val_fraction"] = 2.0
    assert [e.path for e in config_problems(tiles)[1]] == ["data/val_fraction"]


def test_knn_k_is_checked_against_the_training_images_a_source_declares():
    # digits: 1,797 images, a quarter held out: 1,348 to train on
    parse_trial_config({"probe": {"knn": {"k": 1348}}})
    with pytest.raises(ConfigError, match="1349 neighbours, but data 'digits' holds 1348") as info:
        parse_trial_config({"probe": {"knn": {"k": 1349}}})
    assert info.value.path == "probe/knn/k"
    # the source's default count (shapes: 2,000) when the space gives none
    with pytest.raises(ConfigError, match="1501 neighbours, but data 'shapes' holds 1500"):
        parse_trial_config({"data": {"name": "shapes"}, "probe": {"knn": {"k": 1501}}})
    shapes = {"name": "shapes", "options": {"count": 40, "image_size": 16}, "val_fraction": 0.5}
    with pytest.raises(ConfigError, match="holds 20 training images"):
        parse_trial_config({"data": shapes, "probe": {"knn": {"k": 21}}})
    # the default k (20) is cut to the images there are, and a probe set without kNN is free
    parse_trial_config({"data": {**shapes, "options": {"count": 10, "image_size": 16}}})
    parse_trial_config({"probe": {"names": ["rankme"], "knn": {"k": 5000}}})


def _decoded(tmp_path, images, labels=None):
    import numpy as np

    from trainables.data import load_dataset

    arrays = {"images": images} if labels is None else {"images": images, "labels": labels}
    np.savez(tmp_path / "d.npz", **arrays)
    options = {"path": str(tmp_path / "d.npz"), "labels_key": None if labels is None else "labels"}
    data = {"name": "npz", "options": options}
    return data, load_dataset(parse_trial_config({"data": data}).data)


def test_dataset_problems_are_what_only_the_decoded_data_shows(tmp_path):
    import numpy as np

    from trainables.validate import dataset_problems

    def problems(config, dataset):
        return [(p.path, p.message) for p in dataset_problems(parse_trial_config(config), dataset)]

    images = np.zeros((12, 8, 8), dtype=np.uint8)
    data, ds = _decoded(tmp_path, images, np.arange(12) % 3)
    assert problems({"data": data}, ds) == []  # 9 training images: the default k is cut to 9
    [(path, message)] = problems({"data": data, "probe": {"knn": {"k": 10}}}, ds)
    assert path == "probe/knn/k" and "holds 9 training images" in message
    [(path, message)] = problems({"data": data, "model": {"patch_size": 3}}, ds)
    assert path == "model/patch_size" and "patch size 3 does not tile the 8x8 images" in message
    # one class: every image is 'right' (kNN 1.0 from the first epoch); no labels at all
    data, ds = _decoded(tmp_path, images, np.zeros(12, dtype=np.int64))
    [(path, message)] = problems({"data": data}, ds)
    assert path == "probe/names" and "hold 1 class" in message
    assert problems({"data": data, "probe": {"names": ["rankme"]}}, ds) == []
    data, ds = _decoded(tmp_path, images)
    [(path, message)] = problems({"data": data}, ds)
    assert path == "probe/names" and "needs labels" in message
    data, ds = _decoded(tmp_path, np.zeros((12, 8, 16), dtype=np.uint8), np.arange(12) % 3)
    [(path, message)] = problems({"data": data}, ds)
    assert path == "data/name" and "8x16 images; the encoders take square images" in message
    cnn = {"model": {"name": "resnet_small"}, "loss": {"name": "vicreg"}}
    assert [p for p, _ in problems({"data": data, **cnn, "probe": {"feature": "pooled"}}, ds)] == [
        "data/name"
    ]
