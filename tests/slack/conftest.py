"""Fixtures for the Slack tests: a running loopback Slack stub and env configs for it."""

from __future__ import annotations

import pytest

from helpers.slack_stub import SlackStub


@pytest.fixture
def stub(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # the stub is on loopback
        monkeypatch.delenv(var, raising=False)
    with SlackStub() as s:
        yield s


@pytest.fixture
def webhook_env(stub, monkeypatch):
    """Incoming-webhook mode pointed at the stub."""
    monkeypatch.setenv("SLACK_WEBHOOK_URL", stub.webhook_url)
    return stub


@pytest.fixture
def bot_env(stub, monkeypatch, mlflow_db):
    """Bot-token mode (threads) pointed at the stub's Web API."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", stub.token)
    monkeypatch.setenv("SLACK_CHANNEL", "#ml-alerts")
    monkeypatch.setenv("SLACK_API_URL", stub.api_url)
    return stub


@pytest.fixture(autouse=True)
def _fresh_notifier(monkeypatch):
    """No notifier running, and the one-time "notifications off" log line not yet written."""
    from mlflow_monitor.integrations.slack import lifecycle

    lifecycle.disable(timeout=1.0)
    monkeypatch.setattr(lifecycle, "_logged_off", False)
    yield
    lifecycle.disable(timeout=1.0)
