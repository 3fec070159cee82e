"""Rule specs: the validated YAML forms of a recipe's rules."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from mlflow_monitor.recipes.rules import METRICS, RuleSpec, parse_rule


@pytest.mark.parametrize("text", ["accuracy => 0.8", "accuracy >= high", ">= 0.8", "accuracy"])
def test_malformed_rule_text_is_rejected(text):
    with pytest.raises(ValidationError):
        parse_rule(text)


@pytest.mark.parametrize(("raw", "text"), [
    ("accuracy >= 0.85", "accuracy >= 0.85"),
    ({"metric": "f1", "op": ">=", "threshold": 0.8}, "f1 >= 0.8"),
    ({"metric": "accuracy", "max_drop_vs_champion": 0.01}, "accuracy >= champion - 0.01"),
    ({"metric": "rmse", "max_rise_vs_champion": 0.5}, "rmse <= champion + 0.5"),
    ({"no_drift_in": ["age", "income"]}, "no drift in age, income"),
])
def test_each_rule_form_parses_to_its_text(raw, text):
    assert parse_rule(raw).text == text


def test_threshold_rule_round_trips_through_its_yaml_value():
    spec = parse_rule("drift_share < 0.3")

    assert spec.kind == "threshold"
    assert parse_rule(spec.to_yaml_value()) == spec


def test_lower_is_better_champion_drop_is_a_problem_for_the_recipe():
    spec = RuleSpec(metric="rmse", max_drop_vs_champion=0.1)

    assert not METRICS["rmse"].higher_is_better
    assert ("max_drop_vs_champion", "'rmse' is lower-is-better; use max_rise_vs_champion") in \
        spec.problems("regression", "y")


@pytest.mark.parametrize(
    ("raw", "message"),
    [({"no_drift_in": "age"}, "expected a list of column names or 'key_columns', got 'age'"),
     ({"no_drift_in": []}, "expected at least one column name or 'key_columns', got []"),
     ({"max_drifted_columns": 1, "metric": "n_drifted"}, "'max_drifted_columns' takes no 'metric'"),
     ({"max_drifted_columns": 1, "no_drift_in": ["a"]}, "expected exactly one rule form")],
)
def test_bad_drift_rules_say_what_is_allowed(raw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_rule(raw)


def test_drift_rule_forms_round_trip():
    for raw, text in (({"no_drift_in": "key_columns"}, "no drift in key columns"),
                      ({"max_drifted_columns": 0}, "at most 0 drifted columns")):
        spec = parse_rule(raw)
        assert spec.text == text and parse_rule(spec.to_yaml_value()) == spec
