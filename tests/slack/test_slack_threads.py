"""Threads: one per model version (its promotions) and one per training run, kept in MLflow tags."""

from __future__ import annotations

import mlflow
from helpers.dead_letters import dead_letters
from helpers.servers import free_port
from helpers.slack_stub import FAST_SETTINGS as FAST
from mlflow.tracking import MlflowClient

from mlflow_monitor.events import HealthAlert, RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.threads import TAG_CHANNEL, TAG_TS


def _model_version(name: str = "churn") -> tuple[str, str]:
    client = MlflowClient()
    with mlflow.start_run() as run:
        pass
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return run.info.run_id, mv.version


def test_second_verdict_for_a_version_replies_in_its_thread_and_ts_is_a_version_tag(bot_env):
    run_id, version = _model_version()
    notifier = slack.enable(FAST)
    publish(Verdict(model_name="churn", version=version, target="alias:challenger", passed=True, run_id=run_id))
    publish(Verdict(model_name="churn", version=version, target="alias:champion", passed=False, run_id=run_id))
    assert notifier.flush(20)
    first, second = bot_env.wait_for_messages(2)
    assert first["thread_ts"] is None
    assert second["thread_ts"] == first["ts"] and second["channel"] == first["channel"] == "C0ALERTS"
    tags = MlflowClient().get_model_version("churn", version).tags
    assert tags[TAG_TS] == first["ts"] and tags[TAG_CHANNEL] == "C0ALERTS"


def test_a_later_process_finds_the_version_thread_from_the_tag(bot_env):
    run_id, version = _model_version()
    notifier = slack.enable(FAST)
    publish(Verdict(model_name="churn", version=version, target="alias:champion", passed=True))
    assert notifier.flush(20)
    slack.disable()
    notifier = slack.enable(FAST)  # fresh notifier: empty cache, must read the tag
    publish(Verdict(model_name="churn", version=version, target="alias:champion", passed=False))
    assert notifier.flush(20)
    first, second = bot_env.wait_for_messages(2)
    assert second["thread_ts"] == first["ts"]


def test_run_alerts_and_summary_share_the_run_thread_separate_from_other_runs(bot_env):
    with mlflow.start_run() as a:
        pass
    with mlflow.start_run() as b:
        pass
    notifier = slack.enable(FAST)
    publish(HealthAlert(run_id=a.info.run_id, rule="nan_loss", message="loss is nan"))
    publish(HealthAlert(run_id=b.info.run_id, rule="plateau", message="no improvement"))
    publish(RunSummary(run_id=a.info.run_id, status="FAILED", duration_s=5))
    assert notifier.flush(20)
    alert_a, alert_b, summary_a = bot_env.wait_for_messages(3)
    assert alert_a["thread_ts"] is None and alert_b["thread_ts"] is None
    assert summary_a["thread_ts"] == alert_a["ts"]
    assert MlflowClient().get_run(a.info.run_id).data.tags[TAG_TS] == alert_a["ts"]


def test_webhook_messages_are_top_level_without_thread_tags(webhook_env, mlflow_db):
    with mlflow.start_run() as run:
        pass
    notifier = slack.enable(FAST)
    publish(HealthAlert(run_id=run.info.run_id, rule="nan_loss", message="x"))
    publish(RunSummary(run_id=run.info.run_id, status="FINISHED", duration_s=1))
    assert notifier.flush(10)
    msgs = webhook_env.wait_for_messages(2)
    assert [m["thread_ts"] for m in msgs] == [None, None]
    assert TAG_TS not in MlflowClient().get_run(run.info.run_id).data.tags


def test_verdict_notify_channel_overrides_the_configured_channel(bot_env):
    notifier = slack.enable(FAST)
    publish(Verdict(model_name="nomodel", version="1", target="alias:champion", passed=True,
                    notify={"channel": "#ml-gate"}))
    assert notifier.flush(20)
    (msg,) = bot_env.wait_for_messages(1)
    assert msg["channel"] == "C0GATE"


def test_delivery_does_not_wait_for_a_tracking_server_that_is_down(bot_env):
    mlflow.set_tracking_uri(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    notifier = slack.enable(FAST)
    publish(HealthAlert(run_id="r-down", rule="nan_loss", message="loss is nan"))
    publish(RunSummary(run_id="r-down", status="FAILED", duration_s=5))
    first, second = bot_env.wait_for_messages(2, timeout=30)  # MLflow's own retries take minutes
    assert first["thread_ts"] is None
    assert second["thread_ts"] == first["ts"]  # this process still threads them
    assert notifier.flush(10)
    assert dead_letters() == []
