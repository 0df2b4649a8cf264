"""Loss terms against reference formulas written independently here."""

from __future__ import annotations

import pytest
import torch

from trainables.config import ModelConfig
from trainables.encoders import build_encoder
from trainables.objectives import OBJECTIVES, mae_reconstruction, patchify


def reference_mae(pred, target, mask, norm_pix):
    total, count = 0.0, 0
    for b in range(pred.shape[0]):
        for i in range(pred.shape[1]):
            if not mask[b, i]:
                continue
            t = target[b, i]
            if norm_pix:
                t = (t - t.mean()) / torch.sqrt(t.var() + 1e-6)
            total += float(((pred[b, i] - t) ** 2).mean())
            count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_reconstruction_matches_reference(norm_pix):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 16, 12, generator=g)
    target = torch.randn(3, 16, 12, generator=g)
    mask = torch.rand(3, 16, generator=g) < 0.6
    got = mae_reconstruction(pred, target, mask, norm_pix=norm_pix)
    assert got.item() == pytest.approx(reference_mae(pred, target, mask, norm_pix), rel=1e-5)


def test_mae_reconstruction_ignores_visible_patches():
    pred = torch.zeros(1, 4, 3)
    target = torch.tensor([[[1.0] * 3, [2.0] * 3, [100.0] * 3, [100.0] * 3]])
    mask = torch.tensor([[True, True, False, False]])
    assert mae_reconstruction(pred, target, mask).item() == pytest.approx((1 + 4) / 2)


def test_mae_reconstruction_shape_error_is_clear():
    with pytest.raises(ValueError, match="shape mismatch"):
        mae_reconstruction(torch.zeros(2, 4, 3), torch.zeros(2, 4, 2), torch.zeros(2, 4).bool())


def test_patchify_matches_timm_patch_order():
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
    x = torch.arange(64.0).view(1, 1, 8, 8)
    patches = patchify(x, 2)
    assert patches.shape == (1, 16, 4)
    # patch 1 is the second patch of the first row: columns 2-3 of rows 0-1
    assert patches[0, 1].tolist() == [2.0, 3.0, 10.0, 11.0]
    # timm's conv patch embedding sees the same pixels per token
    conv = enc.vit.patch_embed.proj
    w = conv.weight.reshape(conv.out_channels, -1)
    expected = patches[0] @ w.T + conv.bias
    tokens = enc.vit.patch_embed(x)[0]
    assert torch.allclose(tokens, expected, atol=1e-5)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_gives_a_finite_loss_and_gradients(name):
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
    obj = OBJECTIVES[name](enc, channels=1, model_cfg=ModelConfig())
    views = [torch.randn(4, 1, 8, 8) for _ in range(obj.num_views)]

    def sample_mask(batch):
        return torch.rand(batch, enc.num_tokens).argsort(dim=1) < 12

    out = obj(views, sample_mask)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert enc.vit.blocks[0].attn.qkv.weight.grad is not None
