"""No Slack token or webhook URL in logs (slack-sdk's too), dead letters, tags or error text."""

from __future__ import annotations

import logging

import mlflow
from helpers.slack_stub import FAST_SETTINGS as FAST
from mlflow.tracking import MlflowClient

from mlflow_monitor import paths
from mlflow_monitor.events import HealthAlert, RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.config import SlackConfig


def _secret_parts(stub) -> list[str]:
    return [stub.token, stub.webhook_url, stub.webhook_path, stub.webhook_path.rsplit("/", 1)[-1]]


def _debug_everywhere(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("slack_sdk", "slack_sdk.web.base_client", "slack_sdk.webhook.client",
                 "mlflow_monitor", "mlflow_monitor.integrations.slack.sdk"):
        caplog.set_level(logging.DEBUG, logger=name)


def _dead_letter_text() -> str:
    path = paths.dead_letter_dir() / "slack.jsonl"
    return path.read_text() if path.exists() else ""


def test_webhook_url_never_logged_even_by_slack_sdk_at_debug(webhook_env, caplog):
    _debug_everywhere(caplog)
    webhook_env.fail_next(1, status=500)  # a retry: slack-sdk logs the URL again
    notifier = slack.enable(FAST)
    publish(Verdict(model_name="m", version="1", target="alias:champion", passed=True))
    assert notifier.flush(10)
    webhook_env.disconnect_next(None)  # then a failure: error logs + dead letter
    publish(RunSummary(run_id="r1", status="FAILED", duration_s=1))
    assert notifier.flush(10)
    slack.disable()

    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "Sending a request - url: [redacted]" in logged  # slack-sdk did log, redacted
    dead = _dead_letter_text()
    assert "run_summary" in dead
    for secret in _secret_parts(webhook_env):
        assert secret not in logged
        assert secret not in dead


def test_bot_token_never_in_logs_dead_letters_or_mlflow_tags(bot_env, caplog, monkeypatch):
    _debug_everywhere(caplog)
    with mlflow.start_run() as run:
        pass
    notifier = slack.enable(FAST)
    publish(HealthAlert(run_id=run.info.run_id, rule="nan_loss", message="nan"))
    assert notifier.flush(10)
    bot_env.fail_next(None, status=503)
    publish(RunSummary(run_id=run.info.run_id, status="FINISHED", duration_s=1))
    assert notifier.flush(10)
    slack.disable()
    # a wrong token answers invalid_auth: the error text must not carry either token
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-wrong-but-still-secret")
    bot_env.clear_faults()
    notifier = slack.enable(FAST)
    publish(RunSummary(run_id="r2", status="FINISHED", duration_s=1))
    assert notifier.flush(10)
    slack.disable()

    data = MlflowClient().get_run(run.info.run_id).data
    stored = str(data.tags) + str(data.params)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    dead = _dead_letter_text()
    assert "invalid_auth" in dead and "503" in dead
    for secret in (bot_env.token, "xoxb-wrong-but-still-secret"):
        assert secret not in logged and secret not in dead and secret not in stored


def test_config_repr_and_on_log_line_hide_secrets(webhook_env, caplog):
    caplog.set_level(logging.INFO)
    config = SlackConfig.resolve(None)
    assert webhook_env.webhook_url not in repr(config)
    slack.enable(FAST)
    assert "Slack notifications on (webhook)" in caplog.text
    assert webhook_env.webhook_path not in caplog.text
