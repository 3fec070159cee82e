"""Where the notifier's settings come from, and what happens when there are none."""

from __future__ import annotations

import logging
import socket

from mlflow_monitor.events import HealthAlert, RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.config import SlackConfig


def test_nothing_configured_means_no_network_call_and_one_log_line(caplog, monkeypatch):
    connects = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: connects.append(addr) or real_connect(self, addr))
    caplog.set_level(logging.DEBUG, logger="mlflow_monitor")

    assert slack.enable() is None
    assert slack.enable({"channel": "#ml-alerts"}) is None  # a channel alone cannot send
    publish(Verdict(model_name="m", version="1", target="alias:champion", passed=True))
    publish(RunSummary(run_id="r", status="FINISHED", duration_s=1))
    publish(HealthAlert(run_id="r", rule="nan_loss", message="nan"))

    assert connects == []
    lines = [r for r in caplog.records if r.name.startswith("mlflow_monitor.integrations.slack")]
    assert len(lines) == 1 and "Slack notifications off" in lines[0].getMessage()
    assert slack.get_notifier() is None


def test_notify_section_names_the_env_vars_that_hold_secrets(monkeypatch, caplog):
    monkeypatch.setenv("TEAM_SLACK_TOKEN", "xoxb-team")
    config = SlackConfig.resolve({"channel": "#team", "token_env": "TEAM_SLACK_TOKEN", "min_interval_s": 30,
                                  "token": "xoxb-literal-in-recipe"})
    assert config.mode == "web_api" and config.token == "xoxb-team" and config.channel == "#team"
    assert config.min_interval_s == 30.0
    assert "ignoring notify key 'token'" in caplog.text and "xoxb-literal-in-recipe" not in caplog.text


def test_env_vars_choose_webhook_or_bot_token(monkeypatch):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x")
    assert SlackConfig.resolve(None).mode == "webhook"
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    assert SlackConfig.resolve(None).mode == "webhook"  # a token without a channel cannot post
    monkeypatch.setenv("SLACK_CHANNEL", "#ml")
    assert SlackConfig.resolve(None).mode == "web_api"
    assert SlackConfig.resolve("#other").channel == "#other"
    assert SlackConfig.resolve({"enabled": False}) is None
    monkeypatch.setenv("TEAM_HOOK", "https://hooks.slack.com/services/T/B/team")
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    assert SlackConfig.resolve({"webhook_env": "TEAM_HOOK"}).webhook_url.endswith("/team")
