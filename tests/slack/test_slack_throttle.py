"""Throttling by dedup key: one message per key per window, and a count of what was held back."""

from __future__ import annotations

import json

from helpers.slack_stub import FAST_SETTINGS as FAST

from mlflow_monitor.events import HealthAlert, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.throttle import KeyedThrottle


def _nan_alert(run_id: str = "run1", step: int = 0) -> HealthAlert:
    return HealthAlert(run_id=run_id, rule="nan_loss", message=f"train/loss is nan at step {step}",
                       metric="train/loss", value=float("nan"), step=step, severity="critical")


def test_1000_nan_alerts_become_one_message_and_a_suppressed_count(webhook_env):
    notifier = slack.enable(FAST)
    for step in range(1000):
        publish(_nan_alert(step=step))
    assert notifier.flush(10)
    assert len(webhook_env.messages) == 1
    assert "step 0" in webhook_env.messages[0]["text"]
    slack.disable()  # closing tells Slack how many were held back
    msgs = webhook_env.wait_for_messages(2)
    assert len(msgs) == 2
    assert "999 more" in json.dumps(msgs[1]["blocks"])
    assert notifier.stats["suppressed"] == 999


def test_after_the_throttle_window_the_next_message_says_how_many_were_suppressed(webhook_env):
    now = [0.0]
    config = SlackConfig.resolve(FAST)
    notifier = slack.SlackNotifier(config, throttle=KeyedThrottle(600, clock=lambda: now[0])).start()
    try:
        for step in range(5):
            publish(_nan_alert(step=step))
        now[0] = 601.0
        publish(_nan_alert(step=99))
        publish(_nan_alert("other-run"))  # another key is not throttled by the first
        assert notifier.flush(10)
        first, later, other = webhook_env.wait_for_messages(3)
        assert "step 99" in later["text"] and "4 similar message(s) suppressed" in json.dumps(later["blocks"])
        assert "suppressed" not in json.dumps(first["blocks"]) + json.dumps(other["blocks"])
    finally:
        notifier.close(5)


def test_throttle_counts_held_back_messages_per_key_and_drains_them():
    now = [0.0]
    throttle = KeyedThrottle(10, clock=lambda: now[0])
    assert throttle.admit("a", "a1") == 0 and throttle.admit("b", "b1") == 0
    assert throttle.admit("a", "a2") is None and throttle.admit("a", "a3") is None
    assert throttle.drain_suppressed() == [("a", 2, "a3")]
    assert throttle.drain_suppressed() == []
    now[0] = 10.0
    assert throttle.admit("a", "a4") == 0  # drained: the count was reported at drain
