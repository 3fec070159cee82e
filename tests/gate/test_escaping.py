"""Escaping user strings for where the gate writes them, and redaction of its error texts."""

from __future__ import annotations

from mlflow_monitor.gate.escaping import json_safe, markdown_text, safe_number, safe_text
from mlflow_monitor.redaction import redact


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


def test_markdown_text_escapes_html_and_markdown_syntax():
    out = markdown_text("**bold** <b>x</b> [link](http://x)")

    assert "<b>" not in out and "**" not in out
    assert "\\*\\*bold\\*\\*" in out and "&lt;b&gt;" in out


def test_safe_number_shows_four_digits_and_escapes_text():
    assert safe_number(0.123456) == "0.1235"
    assert safe_number(None) == "n/a"
    assert safe_number("<b>") == "&lt;b>"


def test_json_safe_turns_nan_and_inf_into_null_and_keys_into_text():
    assert json_safe({1: [float("nan"), float("inf"), 2.5, True, None]}) == {"1": [None, None, 2.5, True, None]}
