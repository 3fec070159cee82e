"""The gate's values: targets, evaluations, decisions and their JSON summary."""

from __future__ import annotations

import json

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.decision import Decision, Evaluation, Target, summary_of
from mlflow_monitor.gate.rules import RuleResult
from mlflow_monitor.recipes import load_recipe


def _recipe(**triggers):
    return load_recipe({"task": "drift", "current": {"path": "x.parquet"}, "triggers": triggers})


def _blocked(**kw) -> Decision:
    failed = RuleResult("drift_share < 0.3", False, 0.5, 0.3, "drift_share = 0.5: 'drift_share < 0.3' fails")
    ok = RuleResult("n_drifted < 3", True, 1.0, 3.0, "holds")
    ev = Evaluation([failed, ok], {"drift_share": 0.5, "n_drifted": 1.0, "bad": float("nan")})
    return Decision("m<x>", "3", Target("alias", "champion"), T.BLOCKED, False, "ann",
                    "2024-01-01T00:00:00.000000Z", run_id="r1", evaluation=ev, **kw)


def test_target_labels_and_slugs_are_path_safe():
    assert Target("alias", "champion").label == "alias:champion"
    assert Target("new_version").label == "new_version"
    assert Target("stage", "Pro/duction x").slug == "stage-Pro_duction_x"


def test_target_is_triggered_by_the_recipes_triggers():
    recipe = _recipe(aliases=["champion"], stages=[], new_versions=False)

    assert Target("alias", "champion").triggered_by(recipe)
    assert not Target("alias", "shadow").triggered_by(recipe)
    assert not Target("stage", "Production").triggered_by(recipe)
    assert not Target("new_version").triggered_by(recipe)


def test_evaluation_passes_only_when_every_rule_passes():
    ev = _blocked().evaluation

    assert not ev.passed
    assert [r.rule for r in ev.failed_rules] == ["drift_share < 0.3"]


def test_blocked_message_lists_failed_rules_escaped_and_the_break_glass_command():
    message = _blocked(report_folder="mlflow_monitor/gate/x").message()

    assert message.startswith("mlflow-monitor gate BLOCKED: model 'm&lt;x>' version 3 -> alias:champion")
    assert "FAILED drift_share < 0.3: actual 0.5, threshold 0.3" in message
    assert "n_drifted" not in message
    assert "report: runs:/r1/mlflow_monitor/gate/x/report.html" in message
    assert "break glass: mlflow-monitor override 'm&lt;x>' 3 --reason '...'" in message


def test_summary_is_plain_json_with_nan_as_null():
    summary = summary_of(_blocked())

    assert json.loads(json.dumps(summary)) == summary
    assert summary["target"] == "alias:champion" and summary["verdict"] == T.BLOCKED
    assert summary["metrics"]["bad"] is None
    assert [r["rule"] for r in summary["rules"]] == ["drift_share < 0.3", "n_drifted < 3"]
