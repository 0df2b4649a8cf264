"""The kNN probe against scikit-learn's KNeighborsClassifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from trainables.probes import knn


def test_uniform_knn_equals_sklearn_cosine():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16))
    labels = rng.integers(0, 4, size=300)
    feats = centers[labels] + rng.normal(scale=1.5, size=(300, 16))
    train, val = slice(0, 200), slice(200, 300)
    ref = KNeighborsClassifier(n_neighbors=7, metric="cosine", algorithm="brute")
    ref.fit(feats[train], labels[train])
    expected = (ref.predict(feats[val]) == labels[val]).mean()
    t = torch.from_numpy
    got = knn(
        t(feats[train]).float(),
        t(labels[train]),
        t(feats[val]).float(),
        t(labels[val]),
        k=7,
        weighting="uniform",
    )
    assert got["top1"] == pytest.approx(expected)
    assert "top5" not in got  # only 4 classes


def test_top5_with_more_than_five_classes():
    feats = torch.eye(10)
    labels = torch.arange(10)
    out = knn(feats, labels, feats, labels, k=1)
    assert out == {"top1": 1.0, "top5": 1.0}


def test_needs_labels():
    with pytest.raises(ValueError, match="needs labels"):
        knn(torch.zeros(3, 2), None, torch.zeros(3, 2), None)
