"""Encoders: presets, timm names, MAE visible-token encoding, probe features."""

from __future__ import annotations

import pytest
import torch

from trainables.config import ConfigError, ModelConfig
from trainables.encoders import (
    ENCODERS,
    attention_problem,
    build_encoder,
    timm_model_kind,
    timm_vit_tokens,
)


@pytest.mark.parametrize("name", sorted(n for n in ENCODERS if ENCODERS.meta(n)["attention"]))
def test_presets_build_for_their_image_size(name):
    size = 8 if "digits" in name else 32
    enc = build_encoder(ModelConfig(name=name), image_size=size, channels=3)
    x = torch.randn(2, 3, size, size)
    assert enc.encode_visible(x, None).shape == (2, 1 + enc.num_tokens, enc.embed_dim)

    # a patch that does not tile the images: refused at build (timm would drop the rest)
    with pytest.raises(ConfigError, match="patch size 3 does not tile the 8x8") as info:
        build_encoder(ModelConfig(name=name, patch_size=3), image_size=8, channels=3)
    assert info.value.path == "model/patch_size"


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


def test_cls_attention_is_timms_own_attention_map():
    """Against timm's unfused attention, read where it enters the dropout."""
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1).eval()
    last = enc.vit.blocks[-1].attn
    last.fused_attn = False
    seen = []
    last.attn_drop.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    x = torch.randn(3, 1, 8, 8)
    enc.encode_visible(x, None)
    reference = seen[-1][:, :, 0, 1:].mean(dim=1)  # class-token row, patches, mean of heads
    assert torch.allclose(enc.cls_attention(x), reference, atol=1e-6)


def set_attention_vit(logits: torch.Tensor, cls_self: float = 0.0):
    """A one-block ViT whose class token attends to patch i with weight softmax(logits)_i.

    Patch tokens are their position embeddings ``(l_i, 0, 0, 0)`` (the patch
    projection is zero), the class token is ``(c, 0, 0, 0)``, q = k = identity
    and no pre-attention norm: the class token's logit for patch i is
    ``scale * c * l_i``, its own ``scale * c**2``.
    """
    from timm.models.vision_transformer import VisionTransformer
    from torch import nn

    from trainables.encoders import Encoder

    length = logits.numel()
    side = int(length**0.5)
    vit = VisionTransformer(
        img_size=side, patch_size=1, in_chans=1, num_classes=0, embed_dim=4, depth=1, num_heads=1
    )
    block = vit.blocks[0]
    block.norm1 = nn.Identity()
    c = 1.0
    with torch.no_grad():
        vit.patch_embed.proj.weight.zero_()
        vit.patch_embed.proj.bias.zero_()
        vit.pos_embed.zero_()
        vit.pos_embed[0, 1:, 0] = logits / (block.attn.scale * c)
        vit.cls_token.zero_()
        vit.cls_token[0, 0, 0] = c
        block.attn.qkv.weight.copy_(torch.eye(4).repeat(3, 1))
        block.attn.qkv.bias.zero_()
    return Encoder(vit).eval()


def test_attention_masks_are_the_top_and_bottom_of_a_set_attention_map():
    from trainables.masking import make_mask, num_masked

    logits = torch.randperm(16).float() / 4  # distinct: one order of the 16 patches
    enc = set_attention_vit(logits)
    att = enc.cls_attention(torch.rand(5, 1, 4, 4))  # the images do not matter here
    scale = enc.vit.blocks[0].attn.scale
    expected = torch.softmax(torch.cat([torch.tensor([scale * 1.0]), logits]), dim=0)[1:]
    assert torch.allclose(att, expected.expand(5, -1), atol=1e-6)
    k = num_masked(16, 0.75)
    order = logits.argsort(descending=True)
    g = torch.Generator().manual_seed(0)
    for mode, chosen in (("high", order[:k]), ("low", order[-k:])):
        mask = make_mask("attention", 5, (4, 4), 0.75, generator=g, scores=att, mode=mode)
        expected_mask = torch.zeros(16, dtype=torch.bool)
        expected_mask[chosen] = True
        assert torch.equal(mask, expected_mask.expand(5, -1)), mode


def test_attention_problems_of_cnns_and_class_token_free_vits():
    cnn = build_encoder(ModelConfig(name="resnet_small"), image_size=16, channels=3)
    assert "no attention blocks" in attention_problem(cnn.model)
    with pytest.raises(TypeError, match="no attention blocks"):
        cnn.cls_attention(torch.rand(1, 3, 16, 16))
    vit = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
    assert attention_problem(vit.model) is None
    assert timm_model_kind("resnet18") == (
        False,
        "'resnet18' (ResNet) has no attention blocks (not a VisionTransformer)",
    )
    is_vit, problem = timm_model_kind("vit_medium_patch16_gap_256")
    assert is_vit and "has no class token" in problem
    assert timm_model_kind("vit_tiny_patch16_224") == (True, None)
    assert [timm_vit_tokens(n) for n in ("resnet18", "vit_medium_patch16_gap_256")] == [
        (False, False),
        (True, False),
    ]
    assert timm_vit_tokens("vit_tiny_patch16_224") == (True, True)
