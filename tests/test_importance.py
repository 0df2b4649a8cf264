"""Parameter importance: Optuna's own evaluators, the direction handled, trials counted."""

from __future__ import annotations

import optuna
import pytest
from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

from analysis.importance import param_importance

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _planted_study(direction: str = "maximize") -> optuna.Study:
    """y = 3x + 1.5z (+ nothing from w): x matters most, w not at all."""
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.RandomSampler(seed=1))
    sign = 1 if direction == "maximize" else -1

    def objective(t):
        x, z, w = (t.suggest_float(n, 0, 1) for n in "xzw")
        return sign * (3 * x + 1.5 * z) + 0 * w

    study.optimize(objective, n_trials=40)
    return study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_importance_is_optunas_with_the_direction_handled(direction):
    study = _planted_study(direction)
    ped = param_importance(study, evaluator="ped_anova")
    sign = -1 if direction == "maximize" else 1
    reference = optuna.importance.get_param_importances(
        study,
        evaluator=PedAnovaImportanceEvaluator(target_quantile=5 / 40),
        target=lambda t: sign * t.value,
    )
    assert ped.values == pytest.approx(reference)
    assert ped.top(1) == ["x"] and ped.n_trials == 40
    fanova = param_importance(study, evaluator="fanova", seed=3)
    ref = optuna.importance.get_param_importances(
        study, evaluator=FanovaImportanceEvaluator(seed=3), target=lambda t: t.values[0]
    )
    assert fanova.values == pytest.approx(ref)
    assert fanova.top(2) == ["x", "z"]
    assert list(fanova.values.values()) == sorted(fanova.values.values(), reverse=True)


def test_importance_says_when_it_cannot_be_computed():
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    imp = param_importance(study, evaluator="fanova")
    assert imp.values == {} and imp.n_trials == 3 and "3 completed trials" in imp.note
    with pytest.raises(ValueError, match="unknown importance evaluator 'shap'; valid: ped_anova"):
        param_importance(study, evaluator="shap")
