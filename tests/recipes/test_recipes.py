"""Recipe schema and loader: built-ins, YAML paths in errors, round trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_monitor.recipes import BUILTIN_RECIPES, RECIPE_TAG, Recipe, RecipeError, load_recipe

VALID = """
name: churn
task: classification
columns:
  target: churned
  prediction: predicted
  key_columns: [age, income]
current:
  path: runs:/{run_id}/eval/current.parquet
rules:
  - drift_share < 0.3
  - accuracy >= 0.85
  - {metric: f1, op: ">=", threshold: 0.8}
  - {metric: accuracy, max_drop_vs_champion: 0.01}
  - {no_drift_in: [age, income]}
triggers: {aliases: [champion], stages: [Production], new_versions: true}
on_error: allow
notify: {channel: "#ml-alerts"}
report: {sample_size: 1000, seed: 7}
"""


def _errors(source) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(source)
    return info.value.errors


@pytest.mark.parametrize("name", BUILTIN_RECIPES)
def test_builtin_recipe_loads_and_round_trips_through_yaml(name):
    recipe = load_recipe(name)
    assert recipe.task == name
    assert recipe.rules, "a built-in recipe without rules would gate nothing"
    again = load_recipe(recipe.to_yaml())
    assert again == recipe
    assert again.sha256 == recipe.sha256


def test_recipe_tag_key_is_documented_contract():
    assert RECIPE_TAG == "mlflow_monitor.recipe"


def test_full_recipe_parses_every_rule_form():
    recipe = load_recipe(VALID)
    assert [r.text for r in recipe.rules] == [
        "drift_share < 0.3",
        "accuracy >= 0.85",
        "f1 >= 0.8",
        "accuracy >= champion - 0.01",
        "no drift in age, income",
    ]
    assert [r.kind for r in recipe.rules] == ["threshold"] * 3 + ["champion", "no_drift_in"]
    assert recipe.current.path == "runs:/{run_id}/eval/current.parquet"
    assert recipe.triggers.matches_alias("champion") and not recipe.triggers.matches_alias("staging")
    assert recipe.triggers.matches_stage("production")
    assert recipe.on_error == "allow"
    assert recipe.notify == {"channel": "#ml-alerts"}
    assert recipe.needs_performance and recipe.needs_champion
    assert recipe.effective_presets == ["DataDriftPreset", "ClassificationPreset"]


def test_sha256_ignores_key_order_and_yaml_formatting():
    a = load_recipe({"task": "drift", "current": {"dataset": "evaluation"}, "rules": ["drift_share < 0.3"]})
    b = load_recipe("rules: ['drift_share   <   0.30']\ncurrent: {dataset: evaluation}\ntask: drift\n")
    c = load_recipe({"task": "drift", "current": {"dataset": "evaluation"}, "rules": ["drift_share < 0.4"]})
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256


def test_non_numeric_threshold_error_names_its_yaml_path():
    errors = _errors(VALID.replace('threshold: 0.8}', 'threshold: high}'))
    assert "rules[2].threshold: expected a number, got 'high'" in errors


def test_unknown_rule_metric_is_rejected_with_its_path():
    errors = _errors(VALID.replace("accuracy >= 0.85", "acuracy >= 0.85"))
    assert len(errors) == 1
    assert errors[0].startswith("rules[1].metric: unknown metric 'acuracy'; expected one of")


def test_metric_not_computed_for_the_task_is_rejected():
    errors = _errors({"task": "regression", "columns": {"target": "y"}, "current": "x.csv",
                      "rules": ["accuracy >= 0.9"]})
    assert errors == ["rules[0].metric: metric 'accuracy' is not computed for task 'regression'; "
                      "expected one of drift_share, n_drifted, weighted_drift_share, missing_share_increase, "
                      "new_category_share, out_of_range_share, type_changes, rmse, mae, r2, mean_error"]


def test_performance_rule_without_target_column_is_rejected():
    errors = _errors({"task": "classification", "current": "x.csv", "rules": ["accuracy >= 0.9"]})
    assert errors == ["rules[0].metric: metric 'accuracy' needs a target column; set columns.target"]


def test_champion_drop_on_lower_is_better_metric_points_to_rise():
    errors = _errors({"task": "regression", "columns": {"target": "y"}, "current": "x.csv",
                      "rules": [{"metric": "rmse", "max_drop_vs_champion": 0.1}]})
    assert errors == ["rules[0].max_drop_vs_champion: 'rmse' is lower-is-better; use max_rise_vs_champion"]


def test_every_error_is_listed_with_its_path_at_once():
    bad = VALID.replace("on_error: allow", "on_error: maybe").replace("target: churned", "targt: churned")
    bad = bad.replace("drift_share < 0.3", "drift_share ~ 0.3").replace("accuracy >= 0.85", "acuracy > 1")
    errors = _errors(bad)
    assert "on_error: expected 'block' or 'allow', got 'maybe'" in errors
    assert "columns.targt: unknown field (value 'churned')" in errors
    assert any(e.startswith("rules[0]: expected 'metric op number'") for e in errors)
    assert any(e.startswith("rules[1].metric: unknown metric 'acuracy'") for e in errors)


def test_missing_current_source_is_required():
    assert _errors({"task": "drift"}) == ["current: required field is missing"]


def test_current_needs_exactly_one_of_path_dataset_or_production():
    errors = _errors({"task": "drift", "current": {"path": "a.csv", "dataset": "evaluation"}})
    assert errors == ["current: expected exactly one of 'path', 'dataset' or 'production'"]


def test_rule_with_two_forms_is_rejected():
    errors = _errors({"task": "drift", "current": "a.csv",
                      "rules": [{"metric": "drift_share", "op": "<", "threshold": 0.3, "no_drift_in": ["a"]}]})
    assert len(errors) == 1 and errors[0].startswith("rules[0]: expected exactly one rule form")


def test_performance_preset_needs_matching_task():
    errors = _errors({"task": "drift", "current": "a.csv", "presets": ["RegressionPreset", "Nope"]})
    assert errors == ["presets: unknown preset 'Nope'; expected one of DataDriftPreset, "
                      "DataSummaryPreset, ClassificationPreset, RegressionPreset"]
    errors = _errors({"task": "drift", "current": "a.csv", "presets": ["RegressionPreset"]})
    assert errors == ["presets[0]: RegressionPreset needs task 'regression', got 'drift'"]


def test_yaml_syntax_error_reports_line_and_column():
    errors = _errors("task: drift\nrules: [drift_share < 0.3\n")
    assert len(errors) == 1 and errors[0].startswith("line 3, column 1: YAML syntax error")


def test_unreadable_recipe_file_gives_clear_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    errors = _errors(missing)
    assert errors == [f"cannot read recipe file '{missing}': No such file or directory"]
    assert _errors(str(missing)) == errors


def test_misspelled_builtin_name_lists_the_builtins():
    (error,) = _errors("classifcation")
    assert "got str 'classifcation'" in error
    assert "classification, regression, drift" in error


def test_recipe_loads_from_file_path_string_and_path(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_recipe(path) == load_recipe(str(path)) == load_recipe(VALID)
    assert isinstance(load_recipe(path), Recipe)


def test_recipe_error_message_lists_source_and_paths():
    with pytest.raises(RecipeError) as info:
        load_recipe(VALID.replace("threshold: 0.8}", "threshold: high}"))
    text = str(info.value)
    assert text.startswith("invalid recipe (YAML text):")
    assert "  - rules[2].threshold: expected a number, got 'high'" in text
    assert isinstance(info.value, ValueError)


def test_builtin_yaml_files_ship_in_the_package():
    import mlflow_monitor.recipes as pkg

    folder = Path(pkg.__file__).parent / "builtin"
    assert sorted(p.stem for p in folder.glob("*.yaml")) == sorted(BUILTIN_RECIPES)


def test_full_example_in_the_docs_is_a_valid_recipe():
    import re

    doc = (Path(__file__).parents[2] / "docs" / "recipes.md").read_text(encoding="utf-8")
    example = re.search(r"## A full example\n\n```yaml\n(.*?)```", doc, re.S).group(1)
    recipe = load_recipe(example)
    assert recipe.name == "churn" and len(recipe.rules) == 10
    assert recipe.drift is not None and recipe.drift.key_weight == 3
    assert recipe.metrics == ["RowCount", {"ValueDrift": {"column": "income"}}]


def test_unknown_evidently_metric_and_bad_arguments_are_rejected():
    errors = _errors({"task": "drift", "current": "a.csv", "metrics": ["NoSuchMetric"]})
    assert errors == ["metrics: unknown Evidently metric 'NoSuchMetric' (see evidently.metrics)"]
    errors = _errors({"task": "drift", "current": "a.csv", "metrics": [{"ValueDrift": {"colum": "x"}}]})
    assert len(errors) == 1 and errors[0].startswith("metrics: invalid arguments for Evidently metric ValueDrift")


@pytest.mark.parametrize("name", ["classification", "regression", "drift"])
def test_builtin_recipes_say_which_evidence_they_use(name):
    from mlflow_monitor.recipes.loader import builtin_recipe_text

    recipe = load_recipe(name)

    assert recipe.evidence is not None and recipe.evidence.require == "any"
    assert recipe.current.dataset == "evaluation"  # logged on the candidate's run
    assert "# Evidence: self-reported." in builtin_recipe_text(name)


_BASE = {"task": "drift", "current": "x.csv"}


@pytest.mark.parametrize(
    ("drift", "error"),
    [({"method": "ks"}, "drift.method: expected 'calibrated' or 'evidently', got 'ks'"),
     ({"alpha": 0}, "drift.alpha: expected a number > 0.0, got 0"),
     ({"alpha": 0.5}, "drift.alpha: expected a number <= 0.2, got 0.5"),
     ({"alpha": "low"}, "drift.alpha: expected a number, got 'low'"),
     ({"effect_floor": {"numerical": -0.1}}, "drift.effect_floor.numerical: expected a number >= 0.0, got -0.1"),
     ({"effect_floor": {"text": 0.1}}, "drift.effect_floor.text: unknown field (value 0.1)"),
     ({"key_weight": 0.5}, "drift.key_weight: expected a number >= 1.0, got 0.5"),
     ({"new_category_alpha_share": 0}, "drift.new_category_alpha_share: expected a number > 0.0, got 0"),
     ({"new_category_alpha_share": 1}, "drift.new_category_alpha_share: expected a number < 1.0, got 1"),
     ({"new_category_alpha_share": "half"}, "drift.new_category_alpha_share: expected a number, got 'half'"),
     ({"distribution_alpha_share": 1.5}, "drift.distribution_alpha_share: expected a number < 1.0, got 1.5"),
     ({"new_category_alpha_share": 0.6, "distribution_alpha_share": 0.4},
      "drift: new_category_alpha_share + distribution_alpha_share must be below 1 (the missing-share and "
      "out-of-range tests need some alpha), got 0.6 + 0.4"),
     ({"thresholds": 1}, "drift.thresholds: unknown field (value 1)")],
)
def test_bad_drift_settings_name_the_key_the_value_and_what_is_allowed(drift, error):
    assert _errors({**_BASE, "drift": drift}) == [error]


def test_key_column_that_is_excluded_is_rejected():
    errors = _errors({**_BASE, "columns": {"key_columns": ["id"], "exclude": ["id"]}})
    assert errors == ["columns.key_columns[0]: 'id' is also in columns.exclude; expected a column checked for drift"]


def test_drift_settings_default_to_calibrated_and_keep_old_recipes_canonical():
    recipe = load_recipe(_BASE)
    assert recipe.drift is None and "drift" not in recipe.to_dict()  # hashes of old recipes unchanged
    assert (recipe.effective_drift.method, recipe.effective_drift.alpha) == ("calibrated", 0.01)
    assert recipe.effective_drift.new_category_alpha_share is None  # equal weights unless set
    split = load_recipe({**_BASE, "drift": {"alpha": 0.02}})
    assert "new_category_alpha_share" not in split.to_dict()["drift"]  # unset: hashes unchanged
    assert "distribution_alpha_share" not in split.to_dict()["drift"]
    evidently = load_recipe({**_BASE, "drift": {"method": "evidently"}})
    assert evidently.effective_drift.method == "evidently"
    assert load_recipe(evidently.to_yaml()) == evidently


@pytest.mark.parametrize("name", BUILTIN_RECIPES)
def test_builtin_recipes_use_calibrated_drift_and_data_quality_rules(name):
    recipe = load_recipe(name)
    assert recipe.drift is not None and recipe.drift.method == "calibrated" and recipe.drift.alpha == 0.01
    assert recipe.drift.new_category_alpha_share == 0.6  # docs/drift.md, "What a new category needs to be seen"
    assert recipe.drift.distribution_alpha_share == 0.3  # docs/drift.md, "Multiple testing"
    assert recipe.drift.effect_floor.categorical == 0.025
    texts = [r.text for r in recipe.rules]
    assert texts[:6] == ["at most 0 drifted columns", "no drift in key columns", "missing_share_increase <= 0.05",
                         "new_category_share <= 0.005", "out_of_range_share <= 0.01", "type_changes <= 0"]
    assert recipe.needs_performance is (name != "drift")  # drift metrics need no target
