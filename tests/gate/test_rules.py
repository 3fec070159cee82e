"""Rule evaluation: thresholds, champion comparison and key-column drift."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlflow_monitor.gate.drift import compute_drift
from mlflow_monitor.gate.rules import RuleResult, evaluate_rules


@pytest.fixture(scope="module")
def drift():
    """Real drift: 'age' shifted, 'income' and 'city' unchanged (600 rows: KS/chi2 tests)."""
    rng = np.random.default_rng(0)
    n = 600
    ref = pd.DataFrame({"age": rng.normal(40, 5, n), "income": rng.normal(50, 10, n),
                        "city": rng.choice(["a", "b", "c"], n)})
    cur = pd.DataFrame({"age": rng.normal(55, 5, n), "income": rng.normal(50, 10, n),
                        "city": rng.choice(["a", "b", "c"], n)})
    result = compute_drift(ref, cur, numerical=["age", "income"], categorical=["city"])
    assert [c.column for c in result.columns if c.drifted] == ["age"]
    return result


def _one(rule, **kw) -> RuleResult:
    kw.setdefault("metrics", {})
    kw.setdefault("drift", None)
    kw.setdefault("champion_metrics", None)
    (result,) = evaluate_rules([rule], **kw)
    return result


@pytest.mark.parametrize(
    ("rule", "passed"),
    [("accuracy >= 0.85", True), ("accuracy > 0.9", False), ("accuracy < 0.9", False),
     ("accuracy <= 0.9", True), ("accuracy == 0.9", True), ("accuracy != 0.9", False)],
)
def test_threshold_rule_compares_metric_with_each_operator(rule, passed):
    result = _one(rule, metrics={"accuracy": 0.9})
    assert result.passed is passed
    assert result.actual == 0.9
    assert result.rule == rule


def test_failed_threshold_reports_actual_and_threshold():
    result = _one({"metric": "accuracy", "op": ">=", "threshold": 0.95}, metrics={"accuracy": 0.91})
    assert not result.passed
    assert (result.actual, result.threshold) == (0.91, 0.95)
    assert result.message == "accuracy = 0.91: 'accuracy >= 0.95' fails"


def test_drift_share_comes_from_the_drift_result(drift):
    assert _one("drift_share < 0.3", drift=drift).passed is False  # 1 of 3 columns drifted
    result = _one("drift_share < 0.5", drift=drift)
    assert result.passed and result.actual == pytest.approx(1 / 3)
    assert _one("n_drifted <= 0", drift=drift).passed is False


def test_missing_metric_fails_closed():
    result = _one("accuracy >= 0.8", metrics={"drift_share": 0.1})
    assert not result.passed and result.actual is None
    assert "accuracy was not computed" in result.message


def test_nan_metric_fails_closed():
    assert not _one("accuracy >= 0.8", metrics={"accuracy": float("nan")}).passed


def test_challenger_within_allowed_drop_vs_champion_passes():
    rule = {"metric": "accuracy", "max_drop_vs_champion": 0.01}
    result = _one(rule, metrics={"accuracy": 0.905}, champion_metrics={"accuracy": 0.91})
    assert result.passed and not result.skipped
    assert result.threshold == pytest.approx(0.90)
    assert "vs champion 0.91" in result.message


def test_challenger_below_champion_by_more_than_allowed_fails():
    rule = {"metric": "accuracy", "max_drop_vs_champion": 0.01}
    result = _one(rule, metrics={"accuracy": 0.88}, champion_metrics={"accuracy": 0.91})
    assert not result.passed
    assert result.actual == 0.88 and result.threshold == pytest.approx(0.90)
    assert result.rule == "accuracy >= champion - 0.01"


def test_lower_is_better_metric_uses_max_rise_vs_champion():
    rule = {"metric": "rmse", "max_rise_vs_champion": 0.5}
    assert _one(rule, metrics={"rmse": 3.4}, champion_metrics={"rmse": 3.0}).passed
    failed = _one(rule, metrics={"rmse": 3.6}, champion_metrics={"rmse": 3.0})
    assert not failed.passed and failed.threshold == pytest.approx(3.5)


def test_champion_rule_is_skipped_without_a_champion():
    result = _one({"metric": "accuracy", "max_drop_vs_champion": 0.0}, metrics={"accuracy": 0.5})
    assert result.skipped and result.passed
    assert "no current champion" in result.message


def test_champion_rule_fails_when_champion_metric_is_missing():
    result = _one({"metric": "accuracy", "max_drop_vs_champion": 0.0}, metrics={"accuracy": 0.9},
                  champion_metrics={"f1": 0.8})
    assert not result.passed and "not computed for the champion" in result.message


def test_drifted_key_column_fails_and_is_named(drift):
    result = _one({"no_drift_in": ["age", "income"]}, drift=drift)
    assert not result.passed
    assert result.actual == 1.0
    assert result.message.startswith("key columns drifted: age (ks ")


def test_undrifted_key_columns_pass(drift):
    result = _one({"no_drift_in": ["income", "city"]}, drift=drift)
    assert result.passed and result.actual == 0.0


def test_key_column_absent_from_drift_result_fails(drift):
    result = _one({"no_drift_in": ["zip"]}, drift=drift)
    assert not result.passed and "['zip']" in result.message


def test_key_column_rule_without_drift_result_fails_closed():
    assert not _one({"no_drift_in": ["age"]}).passed


def test_rules_are_evaluated_in_order_with_all_results():
    results = evaluate_rules(["accuracy >= 0.8", "accuracy >= 0.95"], metrics={"accuracy": 0.9},
                             drift=None, champion_metrics=None)
    assert [r.passed for r in results] == [True, False]
    assert results[1].to_dict()["rule"] == "accuracy >= 0.95"


# -- calibrated-verdict rules: drifted-column count, key columns, weighted share, findings ----
@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """Calibrated drift, 'age' shifted and a key column; 'income' unchanged; 'city' with
    20% missing rows in the current data."""
    from mlflow_monitor.gate.drift.calibration import Calibrator
    from mlflow_monitor.recipes.schema import DriftSettings

    rng = np.random.default_rng(1)
    n = 3000
    ref = pd.DataFrame({"age": rng.normal(40, 5, n), "income": rng.normal(50, 10, n),
                        "city": rng.choice(["a", "b", "c"], n).astype(object)})
    cur = pd.DataFrame({"age": rng.normal(45, 5, n), "income": rng.normal(50, 10, n),
                        "city": rng.choice(["a", "b", "c"], n).astype(object)})
    cur.loc[: int(0.2 * n) - 1, "city"] = None
    return compute_drift(ref, cur, settings=DriftSettings(key_weight=3), key_columns=["age"],
                         calibrator=Calibrator(tmp_path_factory.mktemp("cal")))


def test_max_drifted_columns_counts_drifted_columns(keyed):
    assert sorted(c.column for c in keyed.columns if c.drifted) == ["age", "city"]
    failed = _one({"max_drifted_columns": 1}, drift=keyed)
    assert not failed.passed and (failed.actual, failed.threshold) == (2.0, 1.0)
    assert failed.message.startswith("2 of 3 columns drifted: ")
    assert failed.rule == "at most 1 drifted columns"
    assert _one({"max_drifted_columns": 2}, drift=keyed).passed
    assert not _one({"max_drifted_columns": 5}).passed  # no drift result: fails closed


def test_no_drift_in_key_columns_reads_the_key_columns_of_the_verdict(keyed, drift):
    result = _one({"no_drift_in": "key_columns"}, drift=keyed)
    assert not result.passed and result.message.startswith("key columns drifted: age (wasserstein ")
    unset = _one({"no_drift_in": "key_columns"}, drift=drift)  # no key columns set
    assert unset.passed and "no key columns set" in unset.message


def test_weighted_drift_share_weighs_key_columns(keyed):
    # age (key, weight 3) and city (1) drifted, income (1) not: (3 + 1) / (3 + 1 + 1)
    assert keyed.weighted_drift_share == pytest.approx(4 / 5)
    assert _one("weighted_drift_share < 0.8", drift=keyed).actual == pytest.approx(0.8)


def test_finding_rules_use_the_findings_that_count(keyed):
    result = _one("missing_share_increase <= 0.05", drift=keyed)
    assert not result.passed and result.actual == pytest.approx(0.2)
    assert _one("new_category_share <= 0.005", drift=keyed).passed
    assert _one("type_changes <= 0", drift=keyed).actual == 0.0
