"""Do label-free scores rank trials like a labelled probe does?

For a study whose trials report a labelled probe (``knn_top1``,
``linear_top1``) and a label-free score (``rankme``, ``alpha_req``,
``alignment``, ``uniformity``), compute across completed trials the
Spearman correlation between them (oriented so that +1 means "the
label-free score prefers the same trials") and the labelled accuracy lost
by picking the best trial by the label-free score instead of the labelled one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import spearmanr

__all__ = [
    "Agreement",
    "Metrics",
    "agreement",
    "all_agreements",
    "label_free_metrics",
    "labelled_metrics",
]

Metrics = Mapping[str, Mapping[str, Any]]
"""metric -> ``{"direction", "labels", "headline", "probe"}``, as the run directory records
them (:meth:`analysis.rundir.RunDir.metrics`)."""


def labelled_metrics(metrics: Metrics) -> list[str]:
    """The headline metric of each labelled probe (``knn_top1``, ``linear_top1``)."""
    return [m for m, info in metrics.items() if info["labels"] and info["headline"]]


def label_free_metrics(metrics: Metrics) -> dict[str, str]:
    """Each label-free metric that has a direction -> that direction.

    Example:
        >>> label_free_metrics({"rankme": {"labels": False, "direction": "maximize"},
        ...                     "alpha_req_alpha": {"labels": False, "direction": None}})
        {'rankme': 'maximize'}
    """
    return {
        m: info["direction"]
        for m, info in metrics.items()
        if not info["labels"] and info["direction"] is not None
    }


@dataclass(frozen=True)
class Agreement:
    """How a label-free score agrees with a labelled probe across trials.

    Attributes:
        labelled: the labelled metric.
        label_free: the label-free metric.
        n: number of completed trials it rests on.
        spearman: rank correlation, oriented (+1 = same preference).
        best_labelled: labelled accuracy of the best trial by that accuracy.
        selected_labelled: labelled accuracy of the best trial by the label-free score.
        accuracy_lost: ``best_labelled - selected_labelled`` (>= 0).
        selected_trial: number of the trial the label-free score selects.
    """

    labelled: str
    label_free: str
    n: int
    spearman: float
    best_labelled: float
    selected_labelled: float
    accuracy_lost: float
    selected_trial: int


def agreement(
    rows: Sequence[Mapping[str, Any]], *, labelled: str, label_free: str, direction: str
) -> Agreement | None:
    """Agreement of ``label_free`` with ``labelled`` over completed trial rows.

    ``rows`` are ``trials.parquet`` rows (``final/<metric>`` columns);
    ``direction`` is the label-free metric's. Returns None when fewer than 3
    completed trials report both.

    Example:
        >>> rows = [
        ...     {"number": i, "state": "COMPLETE", "final/knn_top1": a, "final/rankme": r}
        ...     for i, (a, r) in enumerate([(0.5, 3.0), (0.7, 5.0), (0.6, 6.0)])
        ... ]
        >>> a = agreement(rows, labelled="knn_top1", label_free="rankme", direction="maximize")
        >>> a.spearman, round(a.accuracy_lost, 2), a.selected_trial
        (0.5, 0.1, 2)
    """
    usable = []
    for r in rows:
        if r.get("state") != "COMPLETE":
            continue
        acc, score = r.get(f"final/{labelled}"), r.get(f"final/{label_free}")
        if acc is None or score is None or not (math.isfinite(acc) and math.isfinite(score)):
            continue
        usable.append((int(r["number"]), float(acc), float(score)))
    if len(usable) < 3:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    accs = [a for _, a, _ in usable]
    scores = [sign * s for _, _, s in usable]
    # a constant column has no ranking (scipy would warn and answer NaN)
    constant = len(set(accs)) == 1 or len(set(scores)) == 1
    rho = math.nan if constant else float(spearmanr(accs, scores).statistic)
    best = max(accs)
    number, selected, _ = max(usable, key=lambda u: sign * u[2])
    return Agreement(
        labelled=labelled,
        label_free=label_free,
        n=len(usable),
        spearman=rho,
        best_labelled=best,
        selected_labelled=selected,
        accuracy_lost=best - selected,
        selected_trial=number,
    )


def all_agreements(rows: Sequence[Mapping[str, Any]], metrics: Metrics) -> list[Agreement]:
    """Every (labelled, label-free) pair of ``metrics`` that the trials report."""
    columns = set(rows[0]) if rows else set()
    out = []
    for labelled in labelled_metrics(metrics):
        for label_free, direction in label_free_metrics(metrics).items():
            if {f"final/{labelled}", f"final/{label_free}"} <= columns:
                result = agreement(
                    rows, labelled=labelled, label_free=label_free, direction=direction
                )
                if result is not None:
                    out.append(result)
    return out
