"""trainables.geometry: images against encoders, known before any trial."""

from __future__ import annotations

import pytest

from trainables import ConfigError, TrialConfig
from trainables.catalogue import live
from trainables.geometry import check_builds, check_heads, token_count


def test_token_count_where_the_data_declares_its_images():
    def tokens(config):
        return token_count(TrialConfig.from_dict(config))

    assert tokens({}) == 16  # vit_digits: 8x8 digits, 2x2 patches
    shapes = {"name": "shapes", "options": {"image_size": 32}}
    assert tokens({"data": shapes, "model": {"name": "vit_tiny_32"}}) == 64
    assert tokens({"model": {"patch_size": 3}}) is None  # does not tile
    assert tokens({"model": {"name": "vit_tiny_patch16_224"}}) is None  # timm: not known here
    assert tokens({"data": {"name": "npz", "options": {"path": "x.npz"}}}) is None


def test_a_timm_encoder_is_built_on_the_meta_device_to_check_it():
    vit = TrialConfig.from_dict({"model": {"name": "vit_tiny_patch16_224", "patch_size": 4}})
    check_builds(vit, 32, 3)  # 4 tiles 32; it builds (no memory: the meta device)
    with pytest.raises(ConfigError, match="patch size 4 does not tile the 30x30") as info:
        check_builds(vit, 30, 3)
    assert info.value.path == "model/patch_size"
    narrow = TrialConfig.from_dict({"model": {"name": "vit_tiny_patch16_224", "embed_dim": 100}})
    with pytest.raises(ConfigError, match="timm cannot build 'vit_tiny_patch16_224'") as info:
        check_builds(narrow, 32, 3)
    assert info.value.path == "model"
    check_builds(TrialConfig.from_dict({"model": {"name": "resnet18"}}), 30, 3)  # any size


def test_widths_split_into_heads_at_the_key_the_space_gives():
    cat = live()
    check_heads(TrialConfig.from_dict({"model": {"embed_dim": 128}}), cat)  # 4 heads of 32
    with pytest.raises(ConfigError) as info:
        check_heads(TrialConfig.from_dict({"model": {"num_heads": 5}}), cat)
    assert info.value.path == "model/num_heads"
    # the decoder counts only where an objective reconstructs through it
    odd_decoder = {"model": {"decoder_dim": 30}}
    with pytest.raises(ConfigError, match="decoder_dim 30 does not split into 4"):
        check_heads(TrialConfig.from_dict(odd_decoder), cat)
    simclr = {**odd_decoder, "loss": {"name": "simclr"}}
    check_heads(TrialConfig.from_dict(simclr), cat)
