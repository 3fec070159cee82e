"""Delivery: off the caller's thread, slack-sdk retries, bounded exit, dead letters."""

from __future__ import annotations

import json

from helpers.slack_stub import FAST_SETTINGS as FAST

from mlflow_monitor import paths
from mlflow_monitor.events import HealthAlert, RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.config import SlackConfig


def _nan_alert(run_id: str = "run1", step: int = 0) -> HealthAlert:
    return HealthAlert(run_id=run_id, rule="nan_loss", message=f"train/loss is nan at step {step}",
                       metric="train/loss", value=float("nan"), step=step, severity="critical")


def _dead_letters() -> list[dict]:
    path = paths.dead_letter_dir() / "slack.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_retry_on_429_waits_the_retry_after_slack_asked_for(webhook_env):
    webhook_env.fail_next(1, status=429, retry_after=1)
    notifier = slack.enable(FAST)
    publish(Verdict(model_name="m", version="1", target="alias:champion", passed=True))
    assert notifier.flush(10)
    assert len(webhook_env.wait_for_messages(1)) == 1
    first, second = webhook_env.requests
    assert first["status"] == 429 and second["status"] == 200
    assert second["time"] - first["time"] >= 1.0  # honoured Retry-After: 1
    assert _dead_letters() == []


def test_429_asking_longer_than_the_cap_goes_to_dead_letter_instead_of_stalling(webhook_env):
    webhook_env.fail_next(1, status=429, retry_after=3600)
    notifier = slack.enable(FAST)
    publish(Verdict(model_name="m", version="1", target="alias:champion", passed=True))
    assert notifier.flush(10)
    assert len(webhook_env.requests) == 1
    (entry,) = _dead_letters()
    assert "429" in entry["reason"] and entry["message"]["kind"] == "verdict"


def test_server_errors_and_dropped_connections_are_retried(bot_env):
    bot_env.fail_next(2, status=500)
    notifier = slack.enable(FAST)
    publish(_nan_alert("a"))
    assert notifier.flush(10)
    bot_env.disconnect_next(1)
    publish(_nan_alert("b"))
    assert notifier.flush(10)
    assert len(bot_env.wait_for_messages(2)) == 2
    assert [r["status"] for r in bot_env.requests] == [500, 500, 200, "disconnect", 200]


def test_a_request_that_times_out_is_retried(webhook_env):
    webhook_env.hang_next(1, seconds=1.5)
    notifier = slack.enable({**FAST, "timeout_s": 0.5})
    publish(_nan_alert())
    assert notifier.flush(10)
    assert len(webhook_env.wait_for_messages(1)) == 1
    assert len(webhook_env.requests) == 2


def test_retries_are_capped_then_the_message_is_dead_lettered(webhook_env):
    webhook_env.fail_next(None, status=503)
    notifier = slack.enable({**FAST, "max_retries": 2})
    publish(_nan_alert())
    assert notifier.flush(10)
    assert len(webhook_env.requests) == 3  # 1 try + 2 retries
    (entry,) = _dead_letters()
    assert "503" in entry["reason"] and entry["message"]["blocks"]


def test_publishing_does_not_wait_for_slack_and_overflow_is_dead_lettered(webhook_env):
    webhook_env.hold()  # Slack stalls: no request is answered until release()
    notifier = slack.enable({**FAST, "queue_size": 5, "timeout_s": 60.0, "flush_timeout_s": 0.5})
    for i in range(20):
        publish(RunSummary(run_id=f"r{i}", status="FINISHED", duration_s=1))
    assert webhook_env.messages == []  # publish returned while Slack had answered nothing
    overflow = notifier.stats["overflow"]
    assert overflow >= 14  # 20 - 5 queued - at most 1 in flight
    slack.disable(timeout=0.5)  # bounded: the in-flight request is still parked
    webhook_env.release()
    webhook_env.wait_for_messages(1, timeout=10)
    entries = _dead_letters()
    reasons = [e["reason"] for e in entries]
    assert sum("queue full" in r for r in reasons) == overflow
    # everything not delivered is in the file: queued + in-flight leftovers at the bounded close
    delivered = {m["text"] for m in webhook_env.messages}
    dead = {e["message"]["text"] for e in entries}
    assert len(delivered | dead) == 20


def test_an_unexpected_transport_error_is_dead_lettered_not_raised(webhook_env):
    class Exploding:
        supports_threads = False

        def send(self, message, thread=None):
            raise RuntimeError("boom")

    notifier = slack.SlackNotifier(SlackConfig.resolve(FAST), transport=Exploding()).start()
    try:
        publish(_nan_alert())  # must not raise
        publish(HealthAlert(run_id="x", rule="r", message="m", value="not-a-number"))  # type: ignore[arg-type]
        assert notifier.flush(5)
    finally:
        notifier.close(2)
    entries = _dead_letters()
    assert [e["message"]["kind"] for e in entries] == ["health_alert", "health_alert"]
    assert all(e["reason"] == "RuntimeError: boom" for e in entries)
