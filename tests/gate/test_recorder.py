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


def _decision(verdict=T.BLOCKED, rules=None, **kw):
    rules = rules if rules is not None else [RuleResult("drift_share < 0.3", False, 0.9, 0.3, "fails"),
                                             RuleResult("accuracy >= 0.8", False, 0.5, 0.8, "fails")]
    return Decision("m", "2", Target("alias", "champion"), verdict, verdict != T.BLOCKED, "ann",
                    "2024-01-01T00:00:00.000000Z", evaluation=Evaluation(rules, {}), **kw)


def test_verdict_line_leads_with_the_verdict_and_the_first_failed_rule():
    from mlflow_monitor.gate.recorder import verdict_line

    assert verdict_line(_decision()) == ("BLOCKED (mlflow-monitor gate) for alias:champion \u00b7 "
                                         "drift_share < 0.3 failed (+1 more)")
    odd = _decision(rules=[RuleResult("no_drift_in: [<b>x</b>]", False, 1.0, 0.0, "fails")])
    assert verdict_line(odd).endswith("\u00b7 1 failed rule(s)")  # column names are not echoed raw
    assert verdict_line(_decision(T.PASSED, rules=[])).endswith("\u00b7 all rules passed")


def test_description_with_only_our_block_starts_with_the_verdict_line_not_the_marker():
    from mlflow_monitor.gate.recorder import verdict_line

    text = replace_description_block("", describe(_decision()), headline=verdict_line(_decision()))

    assert text.startswith("BLOCKED (mlflow-monitor gate) for alias:champion")
    assert text.index(T.DESCRIPTION_BEGIN) > text.index("failed (+1 more)")


def test_verdict_line_is_replaced_with_the_block_and_user_text_is_kept():
    from mlflow_monitor.gate.recorder import verdict_line

    first = replace_description_block("Owner: risk team", describe(_decision()),
                                      headline=verdict_line(_decision()))
    passed = _decision(T.PASSED, rules=[RuleResult("drift_share < 0.3", True, 0.1, 0.3, "holds")])
    second = replace_description_block(first + "\n\nLater note", describe(passed), headline=verdict_line(passed))

    assert second.startswith("Owner: risk team\n\nPASSED (mlflow-monitor gate) for alias:champion")
    assert "BLOCKED" not in second and second.endswith("Later note")
    assert second.count(T.DESCRIPTION_BEGIN) == 1


def test_old_description_without_verdict_line_gets_one():
    from mlflow_monitor.gate.recorder import verdict_line

    old = replace_description_block("", "old block")
    assert old.startswith(T.DESCRIPTION_BEGIN)

    new = replace_description_block(old, describe(_decision()), headline=verdict_line(_decision()))

    assert new.startswith("BLOCKED (mlflow-monitor gate)") and "old block" not in new
