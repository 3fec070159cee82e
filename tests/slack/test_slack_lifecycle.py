"""The process-wide notifier: enable/disable, the notifier entry point, and closing at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import mlflow
from helpers.dead_letters import dead_letter_file, dead_letters
from helpers.slack_stub import FAST_SETTINGS as FAST
from mlflow_monitor import events
from mlflow_monitor.events import RunSummary, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack import lifecycle


def test_enable_twice_returns_the_same_notifier_and_new_settings_replace_it(webhook_env):
    first = slack.enable(FAST)
    assert slack.enable() is first and slack.enable(FAST) is first
    second = slack.enable({**FAST, "min_interval_s": 5})
    assert second is not first and second.config.min_interval_s == 5
    assert slack.get_notifier() is second
    publish(RunSummary(run_id="r", status="FINISHED", duration_s=1))
    assert second.flush(10)
    assert len(webhook_env.wait_for_messages(1)) == 1  # only the live notifier sends


def test_disable_unsubscribes(webhook_env):
    slack.enable(FAST)
    slack.disable()
    publish(RunSummary(run_id="r", status="FINISHED", duration_s=1))
    assert slack.get_notifier() is None and webhook_env.requests == []


def test_the_notifier_entry_point_starts_and_stops_slack_for_a_service(webhook_env):
    assert events.enable_notifiers() == ["slack"]  # as the gate's registry store does at start
    notifier = slack.get_notifier()
    assert notifier is not None and slack.enable() is notifier
    publish(RunSummary(run_id="r", status="FINISHED", duration_s=1))
    assert notifier.flush(10)
    assert len(webhook_env.wait_for_messages(1)) == 1
    events.disable_notifiers(timeout=5)
    assert slack.get_notifier() is None
    publish(RunSummary(run_id="r2", status="FINISHED", duration_s=1))
    assert len(webhook_env.requests) == 1  # unsubscribed: nothing more is sent


def test_enable_is_none_when_not_configured_and_never_raises(monkeypatch):
    assert events.enable_notifiers() == []  # nothing configured: no notifier running
    monkeypatch.setattr(lifecycle.SlackConfig, "resolve", lambda config: 1 / 0)
    assert slack.enable({"channel": "#x"}) is None  # a broken config is logged, not raised
    assert slack.get_notifier() is None


def test_alerts_from_the_pipelines_final_flush_at_exit_are_dead_lettered(webhook_env, tmp_path):
    from mlflow.tracking import MlflowClient

    run_id = MlflowClient().create_run("0").info.run_id
    script = textwrap.dedent(f"""
        import atexit, math
        import mlflow
        from mlflow_monitor import health
        from mlflow_monitor.integrations import slack
        from mlflow_monitor.metrics import get_pipeline  # registers the pipeline's exit flush

        pipeline = get_pipeline()
        pipeline.bind_run({run_id!r}, mlflow.get_tracking_uri())
        # runs after Slack's exit handler (LIFO), before the pipeline's: the NaN is only
        # seen in the pipeline's final flush
        atexit.register(lambda: pipeline.append({run_id!r}, "train/loss", math.nan, 5))
        health.enable()
        slack.enable({FAST!r})
    """)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (entry,) = dead_letters()
    assert entry["message"]["kind"] == "health_alert" and "nan" in entry["message"]["text"]
    assert "closed" in entry["reason"]
    assert webhook_env.webhook_path not in dead_letter_file().read_text()
    assert "nan" in MlflowClient().get_run(run_id).data.tags["mlflow_monitor.health.nan_loss"]


def test_after_exit_close_a_new_notifier_does_not_double_record(webhook_env):
    slack.enable(FAST)
    lifecycle.close_at_exit()
    publish(RunSummary(run_id="late", status="FINISHED", duration_s=1))
    assert [e["message"]["kind"] for e in dead_letters()] == ["run_summary"]
    notifier = slack.enable(FAST)  # e.g. re-enabled: the closed one stops dead-lettering
    publish(RunSummary(run_id="later", status="FINISHED", duration_s=1))
    assert notifier.flush(10)
    assert len(webhook_env.wait_for_messages(1)) == 1
    assert len(dead_letters()) == 1


def test_an_in_flight_message_handed_back_at_close_is_dead_lettered_once(webhook_env):
    webhook_env.hold()  # Slack stalls: the request is parked
    notifier = slack.enable({**FAST, "max_retries": 0, "timeout_s": 30.0})
    publish(RunSummary(run_id="r1", status="FINISHED", duration_s=1))
    assert webhook_env.wait_for_arrivals(1, timeout=10) == 1
    webhook_env.fail_next(None, status=503)
    slack.disable(timeout=0.2)  # bounded: hands the in-flight message back -> dead-lettered
    assert len(dead_letters()) == 1
    webhook_env.release()  # now Slack answers 503: the worker must not dead-letter it again
    notifier._worker._thread.join(10)
    assert not notifier._worker._thread.is_alive()
    assert len(dead_letters()) == 1
    assert notifier.stats["dead_lettered"] == 1 and notifier.stats["sent"] == 0
