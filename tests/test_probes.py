"""Probes against reference implementations and constructed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

from trainables.data import DataConfig, load_dataset
from trainables.probes import (
    PROBES,
    align_uniform,
    alpha_req,
    knn,
    knn_scores,
    lidar,
    linear,
    rankme,
)


def clusters(n=300, d=16, classes=4, scale=1.5, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, d))
    labels = rng.integers(0, classes, size=n)
    feats = centers[labels] + rng.normal(scale=scale, size=(n, d))
    return torch.from_numpy(feats).float(), torch.from_numpy(labels)


@pytest.mark.parametrize("weighting", ["uniform", "exp"])
@pytest.mark.parametrize("k", [1, 7, 20])
def test_knn_predictions_equal_sklearn(weighting, k):
    feats, labels = clusters(classes=6)
    tr, va = slice(0, 200), slice(200, 300)
    temperature = 0.07
    if weighting == "uniform":
        weights = "uniform"
    else:

        def weights(dist):  # cosine distance = 1 - cosine similarity
            return np.exp((1.0 - dist) / temperature)

    ref = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute", weights=weights)
    ref.fit(feats[tr].double().numpy(), labels[tr].numpy())
    expected = ref.predict(feats[va].double().numpy())
    scores = knn_scores(
        feats[tr].double(),
        labels[tr],
        feats[va].double(),
        6,
        k=k,
        temperature=temperature,
        weighting=weighting,
    )
    assert scores.argmax(dim=1).numpy().tolist() == expected.tolist()
    acc = knn(feats[tr], labels[tr], feats[va], labels[va], k=k, weighting=weighting)
    assert acc["knn_top1"] == pytest.approx((expected == labels[va].numpy()).mean(), abs=1e-9)


def test_knn_top5_only_with_more_than_five_classes():
    feats, labels = clusters(classes=4)
    assert set(knn(feats, labels, feats, labels)) == {"knn_top1"}
    eye = torch.eye(10)
    assert knn(eye, torch.arange(10), eye, torch.arange(10), k=1) == {
        "knn_top1": 1.0,
        "knn_top5": 1.0,
    }


def sklearn_logreg_acc(x_tr, y_tr, x_va, y_va, wd):
    mean, std = x_tr.mean(0), x_tr.std(0, ddof=1).clip(1e-6)
    clf = LogisticRegression(C=1.0 / (wd * len(x_tr)), max_iter=5000, tol=1e-8)
    clf.fit((x_tr - mean) / std, y_tr)
    return clf.score((x_va - mean) / std, y_va)


@pytest.mark.parametrize("classes", [2, 3])
def test_fit_logistic_is_sklearns_with_c_of_1_over_wd_n_or_2_over_wd_n_for_two_classes(classes):
    from trainables.probes import fit_logistic

    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 5, generator=g)
    y = (x[:, :2].sum(1) * 1.5 + torch.randn(120, generator=g)).ge(0).long()
    if classes == 3:
        y = y + (x[:, 2] > 0.8).long()
    wd = 0.05
    w, _ = fit_logistic(x, y, classes, weight_decay=wd, max_iter=500)
    c = (2.0 if classes == 2 else 1.0) / (wd * len(x))
    ref = LogisticRegression(C=c, max_iter=10_000, tol=1e-12).fit(x.numpy(), y.numpy())
    if classes == 2:  # one sigmoid: the difference of the two softmax columns
        ours, theirs = (w[:, 1] - w[:, 0]).numpy(), ref.coef_[0]
        wrong = LogisticRegression(C=1.0 / (wd * len(x)), max_iter=10_000, tol=1e-12)
        wrong_coef = wrong.fit(x.numpy(), y.numpy()).coef_[0]
        assert abs(wrong_coef - ours).max() > 0.05  # C = 1/(wd n) is not it
    else:
        ours, theirs = w.T.numpy(), ref.coef_
    assert abs(ours - theirs).max() < 2e-3, abs(ours - theirs).max()


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def test_linear_probe_matches_sklearn_on_raw_pixels(digits):
    x_tr = digits.train_x.flatten(1).float()
    x_va = digits.val_x.flatten(1).float()
    for wd in (1e-3, 1e-2):
        ours = linear(x_tr, digits.train_y, x_va, digits.val_y, weight_decays=(wd,))
        ref = sklearn_logreg_acc(
            x_tr.numpy(), digits.train_y.numpy(), x_va.numpy(), digits.val_y.numpy(), wd
        )
        assert abs(ours["linear_top1"] - ref) <= 0.01, (wd, ours, ref)


def test_linear_probe_matches_sklearn_on_encoder_features(digits):
    from trainables import Trainer, TrialConfig

    trainer = Trainer(TrialConfig.from_dict({"train": {"threads": 1}}), digits)
    f_tr, f_va = trainer.features(digits.train_x), trainer.features(digits.val_x)
    ours = linear(f_tr, digits.train_y, f_va, digits.val_y, weight_decays=(1e-2,))
    ref = sklearn_logreg_acc(
        f_tr.numpy(), digits.train_y.numpy(), f_va.numpy(), digits.val_y.numpy(), 1e-2
    )
    assert abs(ours["linear_top1"] - ref) <= 0.01, (ours, ref)
    # the weight-decay grid picks a value at least as good as a poor fixed one
    grid = linear(f_tr, digits.train_y, f_va, digits.val_y)
    assert grid["linear_top1"] >= ours["linear_top1"] - 0.03


def test_rankme_equals_numpy_definition():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 24)) @ rng.normal(size=(24, 24))
    sigma = np.linalg.svd(z, compute_uv=False)
    p = sigma / np.abs(sigma).sum() + 1e-7
    expected = math.exp(-(p * np.log(p)).sum())
    got = rankme(torch.from_numpy(z), None, torch.zeros(1, 24), None)["rankme"]
    assert got == pytest.approx(expected, rel=1e-9)


def test_rankme_collapsed_is_one_and_isotropic_is_near_full():
    one = torch.ones(500, 32) * torch.randn(1, 32)
    assert rankme(one, None, one, None)["rankme"] == pytest.approx(1.0, abs=1e-3)
    g = torch.randn(4000, 32, generator=torch.Generator().manual_seed(0))
    assert rankme(g, None, g, None)["rankme"] > 0.95 * 32


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_alpha_req_recovers_a_planted_power_law(alpha):
    d = 64
    q, _ = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64))
    eig = torch.arange(1, d + 1, dtype=torch.float64).pow(-alpha)
    g = torch.randn(20000, d, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    z = (g * eig.sqrt()) @ q.T
    out = alpha_req(z, None, z, None)
    assert out["alpha_req_alpha"] == pytest.approx(alpha, abs=0.08)
    assert out["alpha_req"] == pytest.approx(abs(out["alpha_req_alpha"] - 1.0))


def _lidar_numpy(views, delta=1e-4, eps=1e-7):
    """LiDAR written out per image, with scipy's matrix square root."""
    from scipy.linalg import sqrtm

    z = np.stack(views, axis=1)  # n, q, d
    n, q, d = z.shape
    mu = z.mean(axis=1)
    grand = mu.mean(axis=0)
    s_b = sum(np.outer(m - grand, m - grand) for m in mu) / (n - 1)
    s_w = sum(np.outer(z[i, j] - mu[i], z[i, j] - mu[i]) for i in range(n) for j in range(q))
    s_w = s_w / (n * (q - 1))
    scale = np.concatenate([mu, (z - mu[:, None]).reshape(n * q, d)]).var(axis=0, ddof=1).mean()
    s_w = s_w + delta * scale * np.eye(d)
    root = np.linalg.inv(np.real(sqrtm(s_w)))
    lam = np.clip(np.linalg.eigvalsh(root @ s_b @ root), 0, None)
    p = lam / lam.sum() + eps
    return math.exp(-(p * np.log(p)).sum())


def test_lidar_equals_the_per_image_definition():
    rng = np.random.default_rng(3)
    base = rng.normal(size=(120, 10)) @ rng.normal(size=(10, 10))
    views = [base + rng.normal(scale=s, size=base.shape) for s in (0.3, 0.6)]
    got = lidar(*(torch.zeros(1, 10),) * 2, None, None, views=tuple(map(torch.from_numpy, views)))
    assert got["lidar"] == pytest.approx(_lidar_numpy(views), rel=1e-6)


def test_lidar_counts_the_directions_augmentation_does_not_move():
    g = torch.Generator().manual_seed(0)
    n, d, k = 600, 12, 4
    images = torch.randn(n, d, generator=g)

    def score(moved):  # augmentation noise in the directions `moved`, tiny elsewhere
        noise = 0.01 * torch.randn(2, n, d, generator=g)
        noise[:, :, moved] = 3.0 * torch.randn(2, n, len(moved), generator=g)
        return lidar(images, None, images, None, views=(images + noise[0], images + noise[1]))

    # the images differ in all 12 directions; augmentation swamps all but k of them
    assert score(list(range(k, d)))["lidar"] == pytest.approx(k, abs=0.5)
    assert score([])["lidar"] > 0.9 * d
    collapsed = torch.ones(n, d)
    assert lidar(collapsed, None, collapsed, None, views=(collapsed, collapsed))["lidar"] < 1.5
    with pytest.raises(ValueError, match="lidar needs"):
        lidar(images, None, images, None, views=(images,))


def test_align_uniform_constructed_cases():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(500, 16, generator=g)
    same = align_uniform(spread, None, spread, None, views=(spread, spread))
    assert same["alignment"] == pytest.approx(0.0, abs=1e-9)
    collapsed = torch.ones(500, 16)
    col = align_uniform(collapsed, None, collapsed, None, views=(collapsed, collapsed))
    assert col["uniformity"] == pytest.approx(0.0, abs=1e-6)  # log E exp(0) = 0: worst
    assert same["uniformity"] < -2.0
    noisy = spread + 0.5 * torch.randn(500, 16, generator=g)
    assert align_uniform(spread, None, spread, None, views=(spread, noisy))["alignment"] > 0.05


@pytest.mark.parametrize("name", sorted(PROBES))
def test_every_probe_reports_exactly_its_declared_metrics(name):
    feats, labels = clusters(n=120, classes=7)
    info = PROBES.meta(name)
    kwargs = {"views": (feats, feats + 0.1)} if info["views"] else {}
    out = PROBES[name](feats[:80], labels[:80], feats[80:], labels[80:], **kwargs)
    expected = set(info["metrics"])
    assert set(out) == expected
    assert all(isinstance(v, float) and math.isfinite(v) for v in out.values())


@pytest.mark.parametrize("name", [n for n in sorted(PROBES) if PROBES.meta(n)["needs_labels"]])
def test_labelled_probes_refuse_missing_labels(name):
    with pytest.raises(ValueError, match="needs labels"):
        PROBES[name](torch.zeros(3, 2), None, torch.zeros(3, 2), None)
