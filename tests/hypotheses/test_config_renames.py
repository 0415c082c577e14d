"""Renamed and removed Shapley settings of a verify config: clear errors naming the new spelling."""

from __future__ import annotations

import pytest

from fstmatch.config import from_dict
from fstmatch.errors import UserError
from fstmatch.hypotheses.config import ESTIMATORS, ShapleyConfig, VerifyConfig


@pytest.mark.parametrize(("old", "new"), [("method", "estimator"), ("permutations", "budget"), ("amp", "weights_dtype")])
def test_old_shapley_keys_name_the_new(old: str, new: str) -> None:
    with pytest.raises(UserError, match=rf"shapley\.{old} was renamed shapley\.{new}"):
        from_dict(VerifyConfig, {"shapley": {old: "spline"}})


def test_auto_estimator_was_removed() -> None:
    with pytest.raises(UserError, match=r"'auto' was removed.*use 'spline'"):
        from_dict(VerifyConfig, {"shapley": {"estimator": "auto"}})
    with pytest.raises(UserError, match="must be one of"):
        from_dict(VerifyConfig, {"shapley": {"estimator": "shap"}})


def test_new_keys_and_the_engine_agree() -> None:
    from fstmatch.explain import ESTIMATORS as ENGINE

    cfg = from_dict(ShapleyConfig, {"budget": 8, "estimator": "permutation", "weights_dtype": "bfloat16"})
    assert (cfg.budget, cfg.estimator, cfg.weights_dtype) == (8, "permutation", "bfloat16")
    assert ENGINE == ESTIMATORS
