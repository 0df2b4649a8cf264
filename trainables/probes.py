"""Probes: score frozen features of the held-out probe set.

Contract (every entry of :data:`PROBES`)::

    fn(train_feats, train_labels | None, val_feats, val_labels | None, **options)
        -> dict[str, float]

Each probe declares the metrics it reports, with the direction in which each
is better, when it is registered
(``register_probe("knn", metrics={"knn_top1": "maximize", ...})``); the space
validator uses them to check a study's objective, and the run directory
records them (``metrics.json``) for the analyses. Features are extracted
once per evaluation and shared by every probe. A probe that also needs two
augmented views of the probe set (``align_uniform``) is registered with
``views=True`` and receives ``views=(feats_a, feats_b)``.

Labelled: ``knn``, ``linear``. Label-free (usable as a study objective when
there are no labels): ``rankme``, ``alpha_req``, ``align_uniform``, ``lidar``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from trainables._registry import Registry

__all__ = [
    "PROBES",
    "align_uniform",
    "alpha_req",
    "knn",
    "knn_scores",
    "lidar",
    "linear",
    "probe_metric_names",
    "rankme",
    "register_probe",
]

ProbeFn = Callable[..., dict[str, float]]


PROBES: Registry[ProbeFn] = Registry(
    "probe", reserved=("train_feats", "train_labels", "val_feats", "val_labels", "views")
)


def register_probe(
    name: str,
    *,
    metrics: Mapping[str, str | None],
    needs_labels: bool,
    views: bool = False,
    limits: Mapping[str, Any] | None = None,
    ceilings: Mapping[str, float] | None = None,
) -> Callable[[ProbeFn], ProbeFn]:
    """Register a probe under ``name``.

    Args:
        metrics: every metric it reports, in order, with the direction in which
            it is better (``maximize``/``minimize``; None: informational, never
            an objective's default direction nor selected by). A labelled
            probe's first metric is its headline (the one label-free scores
            are compared with).
        needs_labels: it fails on data without labels.
        views: it also takes features of two augmented views (``views=``).
        limits: bounds of its options (see :meth:`~trainables._registry.Registry.register`).
        ceilings: the best value a metric can take, where there is one (an
            accuracy's 1.0): a best trial within noise of it is flagged saturated.
    """
    for metric, direction in metrics.items():
        if direction not in ("maximize", "minimize", None):
            raise ValueError(f"probe '{name}': metric {metric!r} has direction {direction!r}")
    unknown = set(ceilings or {}) - set(metrics)
    if unknown:
        raise ValueError(f"probe '{name}': ceilings for unreported metrics {sorted(unknown)}")
    return PROBES.register(
        name,
        limits=limits,
        metrics=dict(metrics),
        needs_labels=needs_labels,
        views=views,
        ceilings=dict(ceilings or {}),
    )


def probe_metric_names(name: str) -> tuple[str, ...]:
    """The metric names probe ``name`` reports (``knn`` -> ``knn_top1``, ``knn_top5``)."""
    return tuple(PROBES.meta(name)["metrics"])


def _need_labels(name: str, *labels: torch.Tensor | None) -> None:
    if any(y is None for y in labels):
        raise ValueError(
            f"{name} needs labels; use a label-free probe (rankme, alpha_req, align_uniform, lidar)"
        )


def _num_classes(*labels: torch.Tensor) -> int:
    return int(torch.cat([y.reshape(-1) for y in labels]).max().item()) + 1


@register_probe(
    "knn",
    metrics={"knn_top1": "maximize", "knn_top5": "maximize"},
    ceilings={"knn_top1": 1.0, "knn_top5": 1.0},
    needs_labels=True,
    limits={
        "k": "[1, inf)",
        "temperature": "(0, inf)",
        "weighting": ("exp", "uniform"),
        "chunk": "[1, inf)",
    },
)
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

    Each of the ``k`` nearest training features (all of them when there are
    fewer; a space that gives a larger ``k`` is refused) votes for its label with
    weight ``exp(sim / temperature)`` (``weighting="exp"``, as in DINO and
    InstDisc) or 1 (``"uniform"``). Ties go to the lowest class index.

    Returns:
        ``knn_top1``, and ``knn_top5`` when there are more than 5 classes.

    Example:
        >>> f = torch.eye(3).repeat(4, 1)
        >>> y = torch.arange(3).repeat(4)
        >>> knn(f, y, f, y, k=3)["knn_top1"]
        1.0
    """
    _need_labels("knn", train_labels, val_labels)
    val_labels = val_labels.to(val_feats.device)
    num_classes = _num_classes(train_labels, val_labels)
    scores = knn_scores(
        train_feats,
        train_labels,
        val_feats,
        num_classes,
        k=k,
        temperature=temperature,
        weighting=weighting,
        chunk=chunk,
    )
    # argmax returns the first maximal index: ties go to the lowest class.
    n = len(val_labels)
    out = {"knn_top1": int((scores.argmax(dim=1) == val_labels).sum()) / n}
    if num_classes > 5:
        top5 = scores.topk(5, dim=1).indices
        out["knn_top5"] = int((top5 == val_labels[:, None]).any(dim=1).sum()) / n
    return out


def knn_scores(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    val_feats: torch.Tensor,
    num_classes: int,
    *,
    k: int,
    temperature: float,
    weighting: str,
    chunk: int = 1024,
) -> torch.Tensor:
    """Class scores ``[N_val, C]``: the summed vote weights of each val row's k neighbours."""
    if weighting not in ("exp", "uniform"):
        raise ValueError(f"weighting must be 'exp' or 'uniform', got {weighting!r}")
    train = F.normalize(train_feats.float(), dim=1)
    val = F.normalize(val_feats.float(), dim=1)
    train_labels = train_labels.to(train.device)
    k = min(k, len(train))
    out = []
    for start in range(0, len(val), chunk):
        sim = val[start : start + chunk] @ train.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / temperature).exp() if weighting == "exp" else torch.ones_like(top_sim)
        scores = torch.zeros(len(sim), num_classes, device=sim.device)
        out.append(scores.scatter_add_(1, train_labels[top_idx], weights))
    return torch.cat(out)


def fit_logistic(
    x: torch.Tensor, y: torch.Tensor, num_classes: int, *, weight_decay: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression, full batch, L-BFGS: ``mean CE + wd/2 * ||W||^2``.

    With three or more classes it equals scikit-learn's multinomial
    ``LogisticRegression(C=1 / (weight_decay * n))`` (intercept not penalised).
    With two, scikit-learn fits one weight vector ``w`` (a sigmoid) where this
    fits two (``w = w_1 - w_0``, and at the optimum ``w_1 = -w_0``), so the
    penalty on ``w`` is half as strong: it equals ``C=2 / (weight_decay * n)``.
    """
    w = torch.zeros(x.shape[1], num_classes, device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ w + b, y) + 0.5 * weight_decay * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


@register_probe(
    "linear",
    metrics={"linear_top1": "maximize"},
    ceilings={"linear_top1": 1.0},
    needs_labels=True,
    limits={"holdout": "(0, 1)", "max_iter": "[1, inf)", "seed": "[0, inf)"},
)
def linear(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor | None,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor | None,
    *,
    weight_decays: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1),
    holdout: float = 0.2,
    max_iter: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """A linear classifier on frozen, standardised features (L-BFGS, full batch).

    The weight decay is chosen from ``weight_decays`` by accuracy on a
    ``holdout`` split of the probe-train set; the classifier is then refit on
    the whole probe-train set and scored on the val set.

    Returns:
        ``linear_top1``.
    """
    _need_labels("linear", train_labels, val_labels)
    train_labels = train_labels.to(train_feats.device)
    val_labels = val_labels.to(val_feats.device)
    x = train_feats.float()
    mean, std = x.mean(dim=0), x.std(dim=0).clamp_min(1e-6)
    x = (x - mean) / std
    v = (val_feats.float() - mean) / std
    num_classes = _num_classes(train_labels, val_labels)
    best_wd = weight_decays[0]
    if len(weight_decays) > 1:
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(len(x), generator=g).to(x.device)
        n_hold = max(1, int(len(x) * holdout))
        hold, fit = perm[:n_hold], perm[n_hold:]
        best_acc = -1.0
        for wd in weight_decays:
            w, b = fit_logistic(
                x[fit], train_labels[fit], num_classes, weight_decay=wd, max_iter=max_iter
            )
            acc = float(((x[hold] @ w + b).argmax(dim=1) == train_labels[hold]).float().mean())
            if acc > best_acc:
                best_acc, best_wd = acc, wd
    w, b = fit_logistic(x, train_labels, num_classes, weight_decay=best_wd, max_iter=max_iter)
    acc = int(((v @ w + b).argmax(dim=1) == val_labels).sum()) / len(val_labels)
    return {"linear_top1": acc}


def _singular_values(feats: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(feats.double())


@register_probe(
    "rankme", metrics={"rankme": "maximize"}, needs_labels=False, limits={"eps": "(0, inf)"}
)
def rankme(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor | None,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor | None,
    *,
    eps: float = 1e-7,
) -> dict[str, float]:
    """RankMe (Garrido et al., 2023): the effective rank of the embedding matrix.

    ``exp(-sum_k p_k log p_k)`` with ``p_k = sigma_k / ||sigma||_1 + eps``,
    ``sigma`` the singular values of the (uncentred) probe-train embeddings.
    1 for collapsed embeddings, close to the dimension for isotropic ones.
    """
    sigma = _singular_values(train_feats)
    p = sigma / sigma.sum().clamp_min(1e-12) + eps
    return {"rankme": float(torch.exp(-(p * p.log()).sum()))}


# alpha_req is |alpha - 1| (0: the ideal power law); alpha_req_alpha the fitted exponent itself
@register_probe(
    "alpha_req",
    metrics={"alpha_req": "minimize", "alpha_req_alpha": None},
    needs_labels=False,
    limits={"rel_floor": "(0, 1)", "max_rank": "[2, inf)"},
)
def alpha_req(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor | None,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor | None,
    *,
    rel_floor: float = 1e-6,
    max_rank: int | None = None,
) -> dict[str, float]:
    """alpha-ReQ (Agrawal et al., 2022): power-law decay of the covariance eigenspectrum.

    ``alpha`` is minus the least-squares slope of ``log lambda_i`` against
    ``log i`` over the eigenvalues above ``rel_floor * lambda_1``. Reported:
    ``alpha_req_alpha`` (alpha itself) and ``alpha_req`` = ``|alpha - 1|``
    (0 is the ideal; lower is better).
    """
    x = train_feats.double()
    x = x - x.mean(dim=0)
    eig = torch.linalg.svdvals(x).pow(2) / max(1, len(x) - 1)
    eig = eig[eig > rel_floor * eig[0].clamp_min(1e-300)]
    if max_rank is not None:
        eig = eig[:max_rank]
    if len(eig) < 2:
        return {"alpha_req": math.inf, "alpha_req_alpha": math.inf}
    log_i = torch.log(torch.arange(1, len(eig) + 1, dtype=torch.float64, device=eig.device))
    log_l = eig.log()
    li, ll = log_i - log_i.mean(), log_l - log_l.mean()
    slope = float((li * ll).sum() / (li * li).sum())
    alpha = -slope
    return {"alpha_req": abs(alpha - 1.0), "alpha_req_alpha": alpha}


@register_probe(
    "align_uniform",
    metrics={"alignment": "minimize", "uniformity": "minimize"},
    needs_labels=False,
    views=True,
    limits={"alpha": "(0, inf)", "t": "(0, inf)"},
)
def align_uniform(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor | None,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor | None,
    *,
    views: tuple[torch.Tensor, torch.Tensor],
    alpha: float = 2.0,
    t: float = 2.0,
) -> dict[str, float]:
    """Alignment and uniformity on the hypersphere (Wang & Isola, 2020).

    ``alignment = E ||f(x) - f(x')||^alpha`` over two augmented views of each
    probe image; ``uniformity = log E exp(-t ||f(x) - f(y)||^2)`` over all
    pairs of distinct images (first view). Both: lower is better.
    """
    a = F.normalize(views[0].float(), dim=1)
    b = F.normalize(views[1].float(), dim=1)
    alignment = (a - b).norm(dim=1).pow(alpha).mean()
    sq = torch.pdist(a).pow(2)
    uniformity = torch.logsumexp(-t * sq, dim=0) - math.log(len(sq))
    return {"alignment": float(alignment), "uniformity": float(uniformity)}


@register_probe(
    "lidar",
    metrics={"lidar": "maximize"},
    needs_labels=False,
    views=True,
    limits={"delta": "(0, inf)", "eps": "(0, inf)"},
)
def lidar(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor | None,
    val_feats: torch.Tensor,
    val_labels: torch.Tensor | None,
    *,
    views: tuple[torch.Tensor, ...],
    delta: float = 1e-4,
    eps: float = 1e-7,
) -> dict[str, float]:
    """LiDAR (Thilak et al., 2024): the effective rank of the LDA matrix of surrogate classes.

    Each probe image is a class whose samples are its ``q`` augmented views
    (here the two of ``views``). With ``mu_i`` an image's mean view and ``mu``
    their mean, ``S_b = sum_i (mu_i - mu)(mu_i - mu)^T / (n - 1)``,
    ``S_w = sum_{i,j} (z_ij - mu_i)(z_ij - mu_i)^T / (n (q - 1)) + delta I`` and
    ``L = S_w^(-1/2) S_b S_w^(-1/2)``; LiDAR is ``exp(-sum_k p_k log p_k)``
    with ``p_k = lambda_k / ||lambda||_1 + eps`` over ``L``'s eigenvalues: the
    number of directions that tell images apart beyond what augmentation moves.
    ``delta`` is relative to the mean variance of the features (scale-free).
    """
    z = torch.stack([v.double() for v in views], dim=1)  # [n, q, d]
    n, q, d = z.shape
    if n < 2 or q < 2:
        raise ValueError(f"lidar needs >= 2 images with >= 2 views each, got {n} x {q}")
    means = z.mean(dim=1)
    between = (means - means.mean(dim=0)).T @ (means - means.mean(dim=0)) / (n - 1)
    spread = (z - means[:, None]).reshape(n * q, d)
    within = spread.T @ spread / (n * (q - 1))
    scale = float(torch.cat([means, spread]).var(dim=0).mean().clamp_min(1e-12))
    within = within + delta * scale * torch.eye(d, dtype=within.dtype, device=within.device)
    evals, evecs = torch.linalg.eigh(within)
    inv_sqrt = evecs @ torch.diag(evals.clamp_min(1e-300).rsqrt()) @ evecs.T
    lam = torch.linalg.eigvalsh(inv_sqrt @ between @ inv_sqrt).clamp_min(0)
    p = lam / lam.sum().clamp_min(1e-300) + eps
    return {"lidar": float(torch.exp(-(p * p.log()).sum()))}
