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

    first, second = message.splitlines()[:2]
    assert first == ("mlflow-monitor gate BLOCKED v3 -> alias:champion: drift_share < 0.3 failed; "
                     "details on the version page")
    assert second == "  model 'm&lt;x>' version 3 -> alias:champion"
    assert "FAILED drift_share < 0.3: actual 0.5, threshold 0.3" in message
    assert "n_drifted" not in message
    assert "report: runs:/r1/mlflow_monitor/gate/x/report.html" in message
    assert "break glass (four eyes): mlflow-monitor override 'm&lt;x>' 3 --reason '...', then a second person" in message


def test_summary_is_plain_json_with_nan_as_null():
    summary = summary_of(_blocked())

    assert json.loads(json.dumps(summary)) == summary
    assert summary["target"] == "alias:champion" and summary["verdict"] == T.BLOCKED
    assert summary["metrics"]["bad"] is None
    assert [r["rule"] for r in summary["rules"]] == ["drift_share < 0.3", "n_drifted < 3"]


def test_headline_fits_a_toast_with_a_long_rule_and_several_failures():
    long_rule = RuleResult("no_drift_in: [" + ", ".join(f"feature_{i}" for i in range(40)) + "]",
                           False, 40.0, 0.0, "fails")
    ev = Evaluation([long_rule, long_rule, long_rule], {})
    decision = Decision("m", "12", Target("stage", "Production"), T.BLOCKED, False, "ann",
                        "2024-01-01T00:00:00.000000Z", evaluation=ev)

    first = decision.message().splitlines()[0]

    assert len(first) <= 120
    assert first.startswith("mlflow-monitor gate BLOCKED v12 -> stage:Production: no_drift_in: [feat")
    assert first.endswith("... failed (+2 more); details on the version page")


def test_error_headline_names_the_error_type_and_points_below():
    decision = Decision("m", "1", Target("alias", "champion"), T.BLOCKED, False, "ann",
                        "2024-01-01T00:00:00.000000Z", error="CurrentDataError: cannot read data from 'x'")

    lines = decision.message().splitlines()

    assert lines[0] == ("mlflow-monitor gate BLOCKED v1 -> alias:champion: evaluation error "
                        "(CurrentDataError); details below")
    assert "  evaluation error: CurrentDataError: cannot read data from 'x'" in lines
