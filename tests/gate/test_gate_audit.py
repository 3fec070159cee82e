"""Recording helpers: redaction, escaping, the description block, the audit log."""

from __future__ import annotations

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import (
    append_audit,
    read_audit_log,
    redact,
    replace_description_block,
    safe_text,
)


def test_redact_strips_url_credentials_and_tokens():
    text = ("cannot connect to postgresql://gate:hunter2@db:5432/mlflow with "
            "token=abc123 and xoxb-1-2-secret via https://hooks.slack.com/services/T0/B0/XYZ")

    out = redact(text)

    for secret in ("hunter2", "gate:", "abc123", "xoxb-1-2-secret", "T0/B0/XYZ"):
        assert secret not in out
    assert "postgresql://***@db:5432/mlflow" in out


def test_safe_text_neutralises_markup_but_keeps_rule_operators_readable():
    out = safe_text("drift_share < 0.3 on <script>alert(1)</script>\nnext &lt;")

    assert "drift_share < 0.3" in out
    assert "<script" not in out and "</script" not in out and "\n" not in out
    assert "&amp;lt;" in out


def test_description_block_replaced_in_place_and_user_text_kept():
    first = replace_description_block("Owner: risk team", "verdict one")
    second = replace_description_block(first + "\n\nLater user note", "verdict two")

    assert second.startswith("Owner: risk team")
    assert second.endswith("Later user note")
    assert "verdict one" not in second and "verdict two" in second
    assert second.count(T.DESCRIPTION_BEGIN) == 1


def test_audit_log_is_append_only_json_lines():
    append_audit({"model_name": "m", "verdict": "BLOCKED", "value": float("nan")})
    append_audit({"model_name": "m", "verdict": "PASSED"})

    records = read_audit_log()

    assert [r["verdict"] for r in records] == ["BLOCKED", "PASSED"]
    assert records[0]["value"] is None  # NaN is not valid JSON
