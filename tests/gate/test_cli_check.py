"""``mlflow-monitor check`` exit codes and ``recipe set/show`` on a real sqlite store."""

from __future__ import annotations

import json

import mlflow
import pytest
from click.testing import CliRunner

from mlflow_monitor.cli import main
from mlflow_monitor.gate import tags as T
from helpers.gate import breast_cancer_frames, drifted, recipe_yaml, train_version, write_current

MODEL = "ci-model"


@pytest.fixture
def version():
    return train_version(mlflow.MlflowClient(), MODEL)


def _recipe_file(tmp_path, frame, name="recipe.yaml"):
    current = write_current(tmp_path, frame, name=f"{name}.parquet")
    path = tmp_path / name
    path.write_text(recipe_yaml(current))
    return path


def test_check_exits_0_when_rules_pass_and_changes_no_alias(version, tmp_path):
    recipe = _recipe_file(tmp_path, breast_cancer_frames()[1])

    result = CliRunner().invoke(main, ["check", MODEL, version, "--recipe", str(recipe)])

    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout and "drift_share < 0.3" in result.stdout
    assert "[mlflow-monitor] loading reference data" in result.stderr
    mv = mlflow.MlflowClient().get_model_version(MODEL, version)
    assert T.VERDICT not in mv.tags and not mv.aliases


def test_check_exits_1_when_a_rule_fails(version, tmp_path):
    recipe = _recipe_file(tmp_path, drifted(breast_cancer_frames()[1]))

    result = CliRunner().invoke(main, ["check", MODEL, version, "--recipe", str(recipe), "--json"])

    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["verdict"] == "BLOCKED"
    assert [r["rule"] for r in summary["rules"] if not r["passed"]][0] == "drift_share < 0.3"
    assert summary["report"].startswith("runs:/")


def test_check_uses_model_recipe_tag_and_exits_1_on_bad_data(version, tmp_path):
    current = write_current(tmp_path, breast_cancer_frames()[1].drop(columns=["mean area"]))
    mlflow.MlflowClient().set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(current))

    result = CliRunner().invoke(main, ["check", MODEL, version])

    assert result.exit_code == 1
    assert "evaluation error" in result.stdout and "mean area" in result.stdout


def test_check_without_any_recipe_fails_with_hint(version):
    result = CliRunner().invoke(main, ["check", MODEL, version])

    assert result.exit_code == 1 and "has no recipe" in result.output


def test_recipe_set_validates_stores_and_show_prints_it(version, tmp_path):
    recipe = _recipe_file(tmp_path, breast_cancer_frames()[1])

    result = CliRunner().invoke(main, ["recipe", "set", MODEL, str(recipe)])
    assert result.exit_code == 0, result.output
    stored = mlflow.MlflowClient().get_registered_model(MODEL).tags[T.RECIPE]
    assert "drift_share < 0.3" in stored

    shown = CliRunner().invoke(main, ["recipe", "show", MODEL])
    assert shown.exit_code == 0 and shown.stdout.startswith("# sha256: ")


def test_recipe_set_rejects_invalid_recipe_and_keeps_old_one(version, tmp_path):
    CliRunner().invoke(main, ["recipe", "set", MODEL, "drift"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: classification\ncurrent: {path: x.csv}\nrules: [accuracy >= high]\n")

    result = CliRunner().invoke(main, ["recipe", "set", MODEL, str(bad)])

    assert result.exit_code != 0 and "rules" in result.output
    assert mlflow.MlflowClient().get_registered_model(MODEL).tags[T.RECIPE] == "drift"
