"""Parameter importance with the evaluator named, and the trials it rests on.

Optuna's own evaluators do the work (``optuna.importance``); this module only
makes the choice explicit, restricts it to completed trials of the primary
objective, and says how many trials each figure rests on.

- ``ped_anova``: PED-ANOVA — how much each parameter's distribution among the
  top ``target_quantile`` of trials differs from all trials (fast, works with
  few trials and conditional parameters' subsets).
- ``fanova``: functional ANOVA on a random forest fitted to the trials
  (variance explained by each parameter; needs the parameters in every trial).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import optuna
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator
from optuna.trial import TrialState

__all__ = ["EVALUATORS", "Importance", "param_importance"]

#: Evaluator name -> factory ``(seed, n_trials) -> evaluator``. PED-ANOVA's top
#: quantile holds at least 5 trials (its authors' advice), 10 % when there are more.
EVALUATORS = {
    "ped_anova": lambda seed, n: PedAnovaImportanceEvaluator(
        target_quantile=min(0.5, max(0.1, 5 / n))
    ),
    "fanova": lambda seed, n: FanovaImportanceEvaluator(seed=seed),
}


@dataclass(frozen=True)
class Importance:
    """Normalised importances (summing to 1) of the sampled parameters.

    Attributes:
        evaluator: ``ped_anova`` or ``fanova``.
        n_trials: completed trials the figures rest on.
        values: parameter -> importance, largest first.
        note: why there are no values (too few trials), else empty.
    """

    evaluator: str
    n_trials: int
    values: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def top(self, k: int) -> list[str]:
        return list(self.values)[:k]


def param_importance(
    study: optuna.Study,
    *,
    evaluator: str,
    params: Sequence[str] | None = None,
    seed: int = 0,
    min_trials: int = 4,
) -> Importance:
    """Importance of ``params`` (default: those in every completed trial) for the primary objective.

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_float("x", 0, 1) + 0 * t.suggest_float("y", 0, 1),
        ...                n_trials=20)
        >>> imp = param_importance(study, evaluator="fanova")
        >>> imp.top(1), imp.n_trials
        (['x'], 20)
    """
    if evaluator not in EVALUATORS:
        valid = ", ".join(EVALUATORS)
        raise ValueError(f"unknown importance evaluator {evaluator!r}; valid: {valid}")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if params is None:
        common = set.intersection(*(set(t.params) for t in complete)) if complete else set()
        # a parameter with one value everywhere (e.g. a fixed grid axis) explains nothing
        params = [p for p in sorted(common) if len({repr(t.params[p]) for t in complete}) > 1]
    n = sum(1 for t in complete if all(p in t.params for p in params))
    if n < min_trials or not params:
        why = f"{n} completed trials" if n < min_trials else "no parameter varies"
        return Importance(evaluator, n, note=f"not computed: {why} (needs {min_trials})")
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    with warnings.catch_warnings():  # its reminder that lower is better: the sign does that
        warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes")
        values = optuna.importance.get_param_importances(
            study,
            evaluator=EVALUATORS[evaluator](seed, n),
            params=list(params),
            target=lambda t: sign * t.values[0],  # PED-ANOVA takes lower as better
        )
    ordered = dict(sorted(values.items(), key=lambda kv: -kv[1]))
    return Importance(evaluator, n, ordered)
