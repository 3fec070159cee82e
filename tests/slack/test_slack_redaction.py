"""Slack's redaction wiring: the core redactor on slack-sdk's loggers, Slack secrets registered with it."""

from __future__ import annotations

import logging

import mlflow

from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.links import MlflowUiLinks
from mlflow_monitor.integrations.slack.sdk_logging import SDK_LOGGER_NAME, SLACK_SDK_LOGGERS, sdk_logger
from mlflow_monitor.redaction import SecretRedactor, redact, strip_credentials

WEBHOOK = "https://hooks.example.com/services/T000/B000/wiringsecret42"


def test_the_sdk_logger_and_slack_sdks_own_loggers_carry_the_core_redactor():
    logger = sdk_logger()
    assert logger.name == SDK_LOGGER_NAME
    for name in (SDK_LOGGER_NAME, *SLACK_SDK_LOGGERS):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, SecretRedactor) for f in filters) == 1, name
    sdk_logger()  # idempotent: still one filter each
    assert sum(isinstance(f, SecretRedactor) for f in logger.filters) == 1


def test_a_slack_config_registers_its_secrets_with_the_core_redactor(caplog):
    SlackConfig(webhook_url=WEBHOOK, token="xoxb-wiring-token-123")
    assert redact(f"POST {WEBHOOK} failed") == "POST [redacted] failed"
    assert "wiringsecret42" not in redact("path /services/T000/B000/wiringsecret42")
    caplog.set_level(logging.DEBUG, logger="slack_sdk.webhook.client")
    sdk_logger()
    logging.getLogger("slack_sdk.webhook.client").debug("Sending a request - url: %s", WEBHOOK)
    assert "Sending a request - url: [redacted]" in caplog.text and WEBHOOK not in caplog.text


def test_a_proxy_password_is_registered_when_a_config_is_built(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://user:proxy-pass-789@proxy.internal:3128")
    SlackConfig(webhook_url=WEBHOOK)
    assert "proxy-pass-789" not in redact("connecting via proxy-pass-789")


def test_ui_links_drop_user_and_password_from_the_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_UI_URL", raising=False)
    mlflow.set_tracking_uri("https://bob:hunter2@mlflow.internal:5000/")
    assert MlflowUiLinks.from_env().base_url == "https://mlflow.internal:5000"
    assert strip_credentials("http://ui:5000/x?a=1#f") == "http://ui:5000/x?a=1#f"
    assert strip_credentials("https://tok@h/p") == "https://h/p"
