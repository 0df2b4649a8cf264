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

__all__ = ["LABELLED", "LABEL_FREE", "Agreement", "agreement", "all_agreements"]

#: Labelled probe metrics (higher is better).
LABELLED: tuple[str, ...] = ("knn_top1", "linear_top1")

#: Label-free metrics and the direction in which they are better.
LABEL_FREE: dict[str, str] = {
    "rankme": "maximize",
    "alpha_req": "minimize",  # |alpha - 1|: 0 is the ideal power law
    "alignment": "minimize",
    "uniformity": "minimize",
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
    rows: Sequence[Mapping[str, Any]], *, labelled: str, label_free: str
) -> Agreement | None:
    """Agreement of ``label_free`` with ``labelled`` over completed trial rows.

    ``rows`` are ``trials.parquet`` rows (``final/<metric>`` columns). Returns
    None when fewer than 3 completed trials report both.

    Example:
        >>> rows = [
        ...     {"number": i, "state": "COMPLETE", "final/knn_top1": a, "final/rankme": r}
        ...     for i, (a, r) in enumerate([(0.5, 3.0), (0.7, 5.0), (0.6, 6.0)])
        ... ]
        >>> a = agreement(rows, labelled="knn_top1", label_free="rankme")
        >>> a.spearman, round(a.accuracy_lost, 2), a.selected_trial
        (0.5, 0.1, 2)
    """
    direction = LABEL_FREE[label_free]
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
    rho = spearmanr(accs, scores).statistic
    best = max(accs)
    number, selected, _ = max(usable, key=lambda u: sign * u[2])
    return Agreement(
        labelled=labelled,
        label_free=label_free,
        n=len(usable),
        spearman=float(rho) if rho == rho else math.nan,
        best_labelled=best,
        selected_labelled=selected,
        accuracy_lost=best - selected,
        selected_trial=number,
    )


def all_agreements(rows: Sequence[Mapping[str, Any]]) -> list[Agreement]:
    """Every (labelled, label-free) pair that the trials report."""
    columns = set(rows[0]) if rows else set()
    out = []
    for labelled in LABELLED:
        for label_free in LABEL_FREE:
            if {f"final/{labelled}", f"final/{label_free}"} <= columns:
                result = agreement(rows, labelled=labelled, label_free=label_free)
                if result is not None:
                    out.append(result)
    return out
