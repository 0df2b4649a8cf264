"""Probes: score frozen features of the held-out probe set.

Contract (every entry of :data:`PROBES`)::

    fn(train_feats, train_labels | None, val_feats, val_labels | None, **options)
        -> dict[str, float]

Keys are reported to Tune prefixed with the probe's name (``knn`` ->
``knn_top1``). Features are extracted once per evaluation and shared by
every probe.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from trainables._registry import make_register

__all__ = ["PROBES", "knn", "probe_metric_names", "register_probe"]

ProbeFn = Callable[..., dict[str, float]]
PROBES: dict[str, ProbeFn] = {}
register_probe = make_register(PROBES, "probe")

#: Metric keys each probe can report (before the ``<probe>_`` prefix).
_METRICS: dict[str, tuple[str, ...]] = {"knn": ("top1", "top5")}


def probe_metric_names(name: str) -> tuple[str, ...]:
    """The reported metric names of probe ``name`` (``knn`` -> ``knn_top1``, ...)."""
    return tuple(f"{name}_{m}" for m in _METRICS.get(name, ()))


@register_probe("knn")
def knn(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor | None,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor | None,
    *,
    k: int = 20,
    temperature: float = 0.07,
    weighting: str = "exp",
    chunk: int = 1024,
) -> dict[str, float]:
    """Weighted kNN on L2-normalised features (cosine similarity).

    Each of the ``k`` nearest training features votes for its label with
    weight ``exp(sim / temperature)`` (``weighting="exp"``, as in DINO and
    InstDisc) or 1 (``"uniform"``). Ties go to the lowest class index.

    Returns:
        ``top1`` accuracy, and ``top5`` when there are more than 5 classes.

    Example:
        >>> f = torch.eye(3).repeat(4, 1)
        >>> y = torch.arange(3).repeat(4)
        >>> knn(f, y, f, y, k=3)["top1"]
        1.0
    """
    if train_labels is None or val_labels is None:
        raise ValueError("knn needs labels; use a label-free probe for unlabelled data")
    if weighting not in ("exp", "uniform"):
        raise ValueError(f"weighting must be 'exp' or 'uniform', got {weighting!r}")
    train = F.normalize(train_feats.float(), dim=1)
    val = F.normalize(val_feats.float(), dim=1)
    train_labels = train_labels.to(train.device)
    val_labels = val_labels.to(val.device)
    num_classes = int(torch.cat([train_labels, val_labels]).max().item()) + 1
    k = min(k, len(train))
    correct1 = correct5 = 0
    for start in range(0, len(val), chunk):
        sim = val[start : start + chunk] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        votes = train_labels[top_idx]
        weights = (top_sim / temperature).exp() if weighting == "exp" else torch.ones_like(top_sim)
        scores = torch.zeros(len(sim), num_classes, device=sim.device)
        scores.scatter_add_(1, votes, weights)
        truth = val_labels[start : start + chunk]
        # argmax returns the first maximal index: ties go to the lowest class.
        correct1 += int((scores.argmax(dim=1) == truth).sum())
        if num_classes > 5:
            top5 = scores.topk(5, dim=1).indices
            correct5 += int((top5 == truth[:, None]).any(dim=1).sum())
    out = {"top1": correct1 / len(val)}
    if num_classes > 5:
        out["top5"] = correct5 / len(val)
    return out
