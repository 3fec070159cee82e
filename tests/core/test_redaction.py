"""The one redactor (mlflow_monitor.redaction)."""

from __future__ import annotations

import logging

import pytest

from mlflow_monitor import redaction
from mlflow_monitor.redaction import SecretRedactor, redact, redact_uri, register_secret


@pytest.mark.parametrize("text, secret", [
    ("API request to http://alice:s3cretPW@127.0.0.1:5000/api/2.0/mlflow/runs/set-tag failed", "s3cretPW"),
    ("postgresql://mlflow:pgPassw0rd@db:5432/mlflow", "pgPassw0rd"),
    ("token=abc123def bearer", "abc123def"),
    ("password: hunter22", "hunter22"),
    ("slack said no for xoxb-1234-5678-abcdefgh", "xoxb-1234-5678-abcdefgh"),
    ("posting to https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX", "XXXXXXXXXXXXXXXX"),
])
def test_credentials_found_by_pattern_are_masked(text, secret):
    out = redact(text)
    assert secret not in out and "***" in out


def test_registered_secrets_are_redacted_wherever_they_appear():
    register_secret("https://example.invalid/hook/abcdefghijklmnop")
    out = redact("failed: path /hook/abcdefghijklmnop and id abcdefghijklmnop")
    assert "abcdefghijklmnop" not in out and redaction.REDACTED in out


def test_short_registered_values_are_not_treated_as_secrets():
    register_secret("abc")  # too short to redact without mangling ordinary text
    assert redact("abc abc") == "abc abc"


def test_redact_uri_keeps_the_host_and_path():
    assert redact_uri("http://u:p@127.0.0.1:5000/x") == "http://***@127.0.0.1:5000/x"
    assert redact_uri(None) is None
    assert redact_uri("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"


def test_strip_credentials_drops_user_and_password_from_a_link():
    assert redaction.strip_credentials("https://u:p@mlflow.example:8443/#/runs/1") == "https://mlflow.example:8443/#/runs/1"


def test_the_logging_filter_redacts_messages_arguments_and_tracebacks():
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "call to %s failed", ("http://u:pw123456@h/",), None)
    try:
        raise RuntimeError("http://u:pw123456@h/ refused")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert SecretRedactor().filter(record)
    assert "pw123456" not in record.getMessage() and "pw123456" not in (record.exc_text or "")
