"""Encoders: presets, timm names, MAE visible-token encoding, probe features."""

from __future__ import annotations

import pytest
import torch

from trainables.config import ConfigError, ModelConfig
from trainables.encoders import ENCODERS, build_encoder


@pytest.mark.parametrize("name", sorted(n for n in ENCODERS if ENCODERS.meta(n)["attention"]))
def test_presets_build_for_their_image_size(name):
    size = 8 if "digits" in name else 32
    enc = build_encoder(ModelConfig(name=name), image_size=size, channels=3)
    x = torch.randn(2, 3, size, size)
    assert enc.encode_visible(x, None).shape == (2, 1 + enc.num_tokens, enc.embed_dim)


def test_the_small_image_resnet_keeps_the_resolution_in_its_first_stage():
    enc = build_encoder(ModelConfig(name="resnet_small"), image_size=16, channels=3).eval()
    x = torch.randn(2, 3, 16, 16)
    model = enc.model
    stem = model.act1(model.bn1(model.conv1(x)))
    assert stem.shape == (2, 16, 16, 16)  # 3x3 stride-1 stem, no max-pool
    assert model.layer1(model.maxpool(stem)).shape == (2, 16, 16, 16)
    assert model.forward_features(x).shape == (2, 128, 2, 2)
    assert enc.features(x, "pooled").shape == (2, 128) == (2, enc.embed_dim)
    with pytest.raises(ConfigError, match="apply to ViTs only"):
        build_encoder(ModelConfig(name="resnet_small", depth=2), image_size=16, channels=3)


def test_a_timm_vit_by_name_with_overrides():
    enc = build_encoder(
        ModelConfig(name="vit_tiny_patch16_224", patch_size=4, depth=2),
        image_size=16,
        channels=1,
    )
    assert enc.grid_hw == (4, 4) and len(enc.vit.blocks) == 2


def test_a_timm_cnn_gives_pooled_features_and_is_refused_for_mae():
    from trainables.objectives import OBJECTIVES

    enc = build_encoder(ModelConfig(name="resnet18"), image_size=32, channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = enc.features(x, "pooled")
    assert feats.shape == (2, 512) == (2, enc.embed_dim)
    pooled = enc.model.forward_features(x).mean(dim=(2, 3))  # global average pooling
    assert torch.allclose(feats, pooled, atol=1e-5)
    with pytest.raises(ValueError, match="needs a ViT"):
        enc.features(x, "cls")
    with pytest.raises(ConfigError, match="MAE needs a ViT"):
        OBJECTIVES["mae"](enc, channels=3, model_cfg=ModelConfig(name="resnet18"))
    with pytest.raises(ConfigError, match="apply to ViTs only"):
        build_encoder(ModelConfig(name="resnet18", depth=3), image_size=32, channels=3)


def test_visible_encoding_equals_encoding_the_kept_tokens_by_hand():
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1).eval()
    x = torch.randn(3, 1, 8, 8)
    mask = torch.rand(3, 16).argsort(dim=1) < 12  # 12 of 16 masked per row
    out = enc.encode_visible(x, mask)
    assert out.shape == (3, 1 + 4, enc.embed_dim)
    vit = enc.vit
    tokens = vit.patch_embed(x) + vit.pos_embed[:, 1:]
    for b in range(3):
        kept = tokens[b][~mask[b]]
        cls = vit.cls_token[0] + vit.pos_embed[0, :1]
        seq = torch.cat([cls, kept])[None]
        expected = vit.norm(vit.blocks(vit.norm_pre(seq)))
        assert torch.allclose(out[b : b + 1], expected, atol=1e-5)


@pytest.mark.parametrize(("kind", "dim"), [("cls", 96), ("mean", 96), ("pooled", 96)])
def test_feature_kinds(kind, dim):
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1).eval()
    x = torch.randn(4, 1, 8, 8)
    feats = enc.features(x, kind)
    assert feats.shape == (4, dim)
    if kind == "pooled":  # timm's token pooling is the class token after the final norm
        assert torch.allclose(feats, enc.features(x, "cls"), atol=1e-5)
