"""Loss terms against reference formulas written independently here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainables import ConfigError, Trainer, TrialConfig, parse_trial_config, run_epochs
from trainables.config import ModelConfig
from trainables.data import DataConfig, load_dataset
from trainables.encoders import build_encoder
from trainables.objectives import (
    LOSS_TERMS,
    OBJECTIVES,
    barlow_off_diagonal,
    barlow_on_diagonal,
    info_nce,
    mae_reconstruction,
    objective_weights,
    patchify,
    vicreg_covariance,
    vicreg_invariance,
    vicreg_variance,
)


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


def test_norm_pix_refuses_one_value_patches():
    # a 1x1 patch of one channel: its unbiased variance is NaN, and so would be the loss
    pred, target, mask = (
        torch.zeros(2, 4, 1),
        torch.rand(2, 4, 1),
        torch.ones(2, 4, dtype=torch.bool),
    )
    assert mae_reconstruction(pred, target, mask).isfinite()
    with pytest.raises(ValueError, match="at least 2 values"):
        mae_reconstruction(pred, target, mask, norm_pix=True)


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

    def sample_mask(images):
        return torch.rand(images.shape[0], enc.num_tokens).argsort(dim=1) < 12

    out = obj(views, sample_mask)
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert enc.vit.blocks[0].attn.qkv.weight.grad is not None


# --- contrastive and redundancy-reduction terms against formulas written here ----------


def pair(n=12, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, d, generator=g, dtype=torch.float64)
    return z1, z1 + 0.5 * torch.randn(n, d, generator=g, dtype=torch.float64)


def ref_info_nce(z1, z2, t):
    z = np.concatenate([z1, z2])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    total = 0.0
    for i in range(n2):
        j = (i + n2 // 2) % n2
        denom = sum(np.exp(z[i] @ z[k] / t) for k in range(n2) if k != i)
        total += -np.log(np.exp(z[i] @ z[j] / t) / denom)
    return total / n2


def ref_vicreg(z1, z2):
    d = z1.shape[1]
    inv = ((z1 - z2) ** 2).mean()
    hinges = [np.maximum(0, 1 - np.sqrt(z.var(axis=0, ddof=1) + 1e-4)).mean() for z in (z1, z2)]
    var = sum(hinges) / 2
    cov = 0.0
    for z in (z1, z2):
        c = np.cov(z, rowvar=False)  # ddof=1
        cov += sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j) / d
    return inv, var, cov


def ref_barlow(z1, z2):
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-5)
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-5)
    c = a.T @ b / len(z1)
    d = c.shape[0]
    on = sum((1 - c[i, i]) ** 2 for i in range(d))
    off = sum(c[i, j] ** 2 for i in range(d) for j in range(d) if i != j)
    return on, off


@pytest.mark.parametrize("t", [0.07, 0.5])
def test_info_nce_matches_reference(t):
    z1, z2 = pair()
    got = info_nce(z1, z2, temperature=t).item()
    assert got == pytest.approx(ref_info_nce(z1.numpy(), z2.numpy(), t), rel=1e-5)


def test_vicreg_terms_match_reference():
    z1, z2 = pair()
    inv, var, cov = ref_vicreg(z1.numpy(), z2.numpy())
    assert vicreg_invariance(z1, z2).item() == pytest.approx(inv, rel=1e-5)
    assert vicreg_variance(z1, z2).item() == pytest.approx(var, rel=1e-5)
    assert vicreg_covariance(z1, z2).item() == pytest.approx(cov, rel=1e-5)


def test_barlow_terms_match_reference():
    z1, z2 = pair()
    on, off = ref_barlow(z1.numpy(), z2.numpy())
    assert barlow_on_diagonal(z1, z2).item() == pytest.approx(on, rel=1e-5)
    assert barlow_off_diagonal(z1, z2).item() == pytest.approx(off, rel=1e-5)


PAIR_TERMS = [n for n in sorted(LOSS_TERMS) if n != "mae_reconstruction"]


@pytest.mark.parametrize("name", PAIR_TERMS)
def test_pair_terms_are_symmetric_and_check_shapes(name):
    z1, z2 = pair()
    term = LOSS_TERMS[name]
    assert term(z1, z2).item() == pytest.approx(term(z2, z1).item(), rel=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        term(z1, z2[:, :3])
    with pytest.raises(ValueError, match="batch of at least 2"):
        term(z1[:1], z2[:1])


def test_identical_views_are_optimal_for_invariance_terms():
    z1, _ = pair()
    assert vicreg_invariance(z1, z1).item() == 0.0
    # a perfectly correlated pair has C_ii = 1 (up to the 1e-5 stabiliser)
    assert barlow_on_diagonal(z1, z1).item() < 1e-4


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_an_objectives_searchable_weights_are_its_terms(name):
    # the weights are derived from the objective's class at registration: the terms
    # it computes are exactly the weights a spec may search
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
    obj = OBJECTIVES[name](enc, channels=1, model_cfg=ModelConfig())
    assert objective_weights(name) == dict(obj.default_weights) == obj.weights
    views = [torch.randn(4, 1, 8, 8) for _ in range(obj.num_views)]
    terms = obj.terms(views, lambda x: torch.rand(len(x), enc.num_tokens).argsort(dim=1) < 8)
    assert set(terms) == set(objective_weights(name))
    # what the masks apply to is declared for checks before a trial (a ViT is needed)
    assert OBJECTIVES.meta(name)["masks"] == (name in ("mae", "hybrid"))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_total_loss_is_the_weighted_sum_of_terms(name):
    torch.manual_seed(0)
    enc = build_encoder(ModelConfig(name="vit_digits"), image_size=8, channels=1)
    weights = {term: 0.5 + i for i, term in enumerate(objective_weights(name))}
    obj = OBJECTIVES[name](enc, channels=1, model_cfg=ModelConfig(), weights=weights)
    views = [torch.randn(6, 1, 8, 8) for _ in range(obj.num_views)]

    def sample_mask(images):
        return torch.rand(images.shape[0], enc.num_tokens).argsort(dim=1) < 12

    out = obj(views, sample_mask)
    expected = sum(w * out[f"loss_{t}"] for t, w in weights.items())
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_unknown_term_weight_is_a_located_error():
    with pytest.raises(ConfigError) as info:
        parse_trial_config({"loss": {"name": "vicreg", "weights": {"invariant": 1.0}}})
    assert info.value.path == "loss/weights/invariant"
    assert "did you mean 'invariance'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_trial_config({"loss": {"name": "simclr", "simclr": {"temprature": 0.2}}})
    assert info.value.path == "loss/simclr/temprature"


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_trains_an_epoch_on_digits(name):
    cfg = TrialConfig.from_dict(
        {
            "loss": {"name": name},
            "train": {"epochs": 1, "threads": 1},
            "aug": {"resized_crop": {"min_scale": 0.6}},
            "optim": {"batch_size": 128},
        }
    )
    (metrics,) = run_epochs(Trainer(cfg, load_dataset(DataConfig())))
    assert np.isfinite(metrics["loss"]) and metrics["knn_top1"] > 0.2


def test_a_timm_cnn_trains_with_a_contrastive_objective():
    cfg = TrialConfig.from_dict(
        {
            "loss": {"name": "simclr"},
            "model": {"name": "resnet10t"},
            "probe": {"feature": "pooled"},
            "aug": {"resized_crop": {"min_scale": 0.5}},
            "train": {"epochs": 1, "threads": 1},
        }
    )
    (metrics,) = run_epochs(Trainer(cfg, load_dataset(DataConfig())))
    assert metrics["knn_top1"] > 0.5
