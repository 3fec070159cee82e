"""What the recorder writes on the version: the description block and its summary."""

from __future__ import annotations

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.decision import Decision, Evaluation, Target
from mlflow_monitor.gate.recorder import describe, replace_description_block
from mlflow_monitor.gate.rules import RuleResult


def test_description_block_replaced_in_place_and_user_text_kept():
    first = replace_description_block("Owner: risk team", "verdict one")
    second = replace_description_block(first + "\n\nLater user note", "verdict two")

    assert second.startswith("Owner: risk team")
    assert second.endswith("Later user note")
    assert "verdict one" not in second and "verdict two" in second
    assert second.count(T.DESCRIPTION_BEGIN) == 1


def test_describe_marks_each_rule_and_escapes_user_strings():
    ev = Evaluation([RuleResult("accuracy >= 0.9", False, 0.81234, 0.9, "fails"),
                     RuleResult("accuracy >= champion - 0.01", True, 0.8, None, "skipped", skipped=True)],
                    {"accuracy": 0.81234})
    decision = Decision("m", "2", Target("alias", "champion"), T.BLOCKED, False, "*bob*",
                        "2024-01-01T00:00:00.000000Z", evaluation=ev)

    text = describe(decision)

    assert text.startswith("**mlflow-monitor gate: BLOCKED** for alias:champion")
    assert "by \\*bob\\*" in text
    assert "- FAILED: accuracy &gt;= 0.9 (actual 0.8123, threshold 0.9)" in text
    assert "- skipped: accuracy &gt;= champion \\- 0.01 (actual 0.8, threshold n/a)" in text
