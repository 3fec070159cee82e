"""Nothing lost, nothing twice: render failures, exit ordering, tracking-server outages, close/replay races."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
from click.testing import CliRunner
from helpers.servers import free_port
from helpers.slack_stub import FAST_SETTINGS as FAST

from mlflow_monitor import paths
from mlflow_monitor.cli import main
from mlflow_monitor.events import HealthAlert, RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack_cli import replay_file, replay_lock_path
from mlflow_monitor.integrations.slack_config import SlackConfig
from mlflow_monitor.integrations.slack_dead_letter import DeadLetterFile, claim, lock_path
from mlflow_monitor.integrations.slack_messages import SlackMessage


def _dead_letter_file() -> Path:
    return paths.dead_letter_dir() / "slack.jsonl"


def _dead_letters() -> list[dict]:
    path = _dead_letter_file()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _hold_lock(path: Path) -> int:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _release_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


# ---- 16: a message that cannot be rendered or serialised is still kept ---------------
def test_an_event_the_renderer_fails_on_is_dead_lettered_as_redacted_plain_text(webhook_env):
    notifier = slack.enable(FAST)
    leaky = f"churn {webhook_env.webhook_url}"  # a secret in event data must not reach the file
    publish(Verdict(model_name=leaky, version="7", target="alias:champion", passed=False,
                    failed_rules=["not-a-mapping"]))  # the renderer expects dicts here
    assert notifier.flush(10)
    assert webhook_env.messages == []
    (entry,) = _dead_letters()
    assert "could not render" in entry["reason"]
    message = entry["message"]
    assert message["kind"] == "verdict" and message["blocks"] == []
    assert "model_name=churn" in message["text"] and "version=7" in message["text"]
    assert message["thread"] == {"kind": "model_version", "key": [leaky.replace(webhook_env.webhook_url,
                                                                                 "[redacted]"), "7"]}
    assert webhook_env.webhook_path not in _dead_letter_file().read_text()


def test_a_message_that_does_not_serialise_is_kept_as_its_text(tmp_path):
    dead = DeadLetterFile(tmp_path / "slack.jsonl")
    odd = SlackMessage("verdict", "BLOCKED: m v1", [{("not", "a str key"): 1}], "verdict:m:1")
    dead.write(odd, "HTTP 503")  # must not raise
    (line,) = (tmp_path / "slack.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["message"]["text"] == "BLOCKED: m v1" and entry["message"]["blocks"] == []
    assert entry["reason"].startswith("HTTP 503; blocks dropped")


# ---- 17: alerts published by exit handlers that run after the notifier's -----------
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
    (entry,) = _dead_letters()
    assert entry["message"]["kind"] == "health_alert" and "nan" in entry["message"]["text"]
    assert "closed" in entry["reason"]
    assert webhook_env.webhook_path not in _dead_letter_file().read_text()
    assert "nan" in MlflowClient().get_run(run_id).data.tags["mlflow_monitor.health.nan_loss"]


def test_after_exit_close_a_new_notifier_does_not_double_record(webhook_env):
    slack.enable(FAST)
    slack._close_at_exit()
    publish(RunSummary(run_id="late", status="FINISHED", duration_s=1))
    assert [e["message"]["kind"] for e in _dead_letters()] == ["run_summary"]
    notifier = slack.enable(FAST)  # e.g. re-enabled: the closed one stops dead-lettering
    publish(RunSummary(run_id="later", status="FINISHED", duration_s=1))
    assert notifier.flush(10)
    assert len(webhook_env.wait_for_messages(1)) == 1
    assert len(_dead_letters()) == 1


# ---- 18: the tracking server is down: messages still go out quickly ------------------
def test_delivery_does_not_wait_for_a_tracking_server_that_is_down(bot_env):
    mlflow.set_tracking_uri(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    notifier = slack.enable(FAST)
    publish(HealthAlert(run_id="r-down", rule="nan_loss", message="loss is nan"))
    publish(RunSummary(run_id="r-down", status="FAILED", duration_s=5))
    first, second = bot_env.wait_for_messages(2, timeout=30)  # MLflow's own retries take minutes
    assert first["thread_ts"] is None
    assert second["thread_ts"] == first["ts"]  # this process still threads them
    assert notifier.flush(10)
    assert _dead_letters() == []


# ---- 19a: a message handed back at close is recorded by one path only ----------------
def test_an_in_flight_message_handed_back_at_close_is_dead_lettered_once(webhook_env):
    webhook_env.hold()  # Slack stalls: the request is parked
    notifier = slack.enable({**FAST, "max_retries": 0, "timeout_s": 30.0})
    publish(RunSummary(run_id="r1", status="FINISHED", duration_s=1))
    assert webhook_env.wait_for_arrivals(1, timeout=10) == 1
    webhook_env.fail_next(None, status=503)
    slack.disable(timeout=0.2)  # bounded: hands the in-flight message back -> dead-lettered
    assert len(_dead_letters()) == 1
    webhook_env.release()  # now Slack answers 503: the worker must not dead-letter it again
    notifier._worker._thread.join(10)
    assert not notifier._worker._thread.is_alive()
    assert len(_dead_letters()) == 1
    assert notifier.stats["dead_lettered"] == 1 and notifier.stats["sent"] == 0


# ---- 19b-d: replay: one at a time, progress kept, claims wait for appenders ---------
def _write_entries(path: Path, *texts: str) -> None:
    dead = DeadLetterFile(path)
    for text in texts:
        dead.write(SlackMessage("run_summary", text, [], f"run:{text}:FINISHED"), "HTTP 503")


def test_a_concurrent_replay_does_not_resend_another_replays_file(webhook_env):
    path = _dead_letter_file()
    _write_entries(path, "Run finished: a")
    in_progress = path.with_name(f"{path.name}.replay-99999-1")  # the other replay's claimed file
    _write_entries(in_progress, "Run finished: b")
    fd = _hold_lock(replay_lock_path(path))  # the other replay is running
    try:
        result = CliRunner().invoke(main, ["slack", "replay"])
        assert result.exit_code != 0 and "another" in result.output
        assert webhook_env.requests == [] and path.exists() and in_progress.exists()
    finally:
        _release_lock(fd)
    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code == 0, result.output
    assert sorted(m["text"] for m in webhook_env.wait_for_messages(2)) == ["Run finished: a", "Run finished: b"]
    assert not in_progress.exists()


def test_replay_keeps_going_past_an_unexpected_error_and_persists_progress(webhook_env, monkeypatch):
    path = _dead_letter_file()
    _write_entries(path, "Run finished: a", "Run finished: boom", "Run finished: c", "Run finished: stop")
    real_send = slack.SlackNotifier.send

    def send(self, message):
        if message.text.endswith("boom"):
            raise RuntimeError("a bug")
        if message.text.endswith("stop") and not os.environ.get("LET_STOP_THROUGH"):
            raise KeyboardInterrupt  # the replay is interrupted here
        return real_send(self, message)

    monkeypatch.setattr(slack.SlackNotifier, "send", send)
    config = SlackConfig.resolve(FAST)
    with pytest.raises(KeyboardInterrupt):
        replay_file(path, config)
    assert [m["text"] for m in webhook_env.wait_for_messages(2)] == ["Run finished: a", "Run finished: c"]
    monkeypatch.setenv("LET_STOP_THROUGH", "1")
    result = replay_file(path, config)  # picks up the interrupted file: a and c are not resent
    assert (result.delivered, result.kept) == (1, 1)
    assert [m["text"] for m in webhook_env.wait_for_messages(3)] == ["Run finished: a", "Run finished: c",
                                                                    "Run finished: stop"]
    (kept,) = _dead_letters()
    assert kept["message"]["text"] == "Run finished: boom" and "RuntimeError: a bug" in kept["reason"]
    assert kept["replay_attempts"] == 2


def test_claim_waits_for_an_appender_holding_the_lock(tmp_path):
    path = tmp_path / "slack.jsonl"
    _write_entries(path, "Run finished: a")
    fd = _hold_lock(lock_path(path))  # a writer is appending
    try:
        assert claim(path, lock_timeout=0.2) is None  # not moved under the writer
        assert path.exists() and not list(tmp_path.glob("slack.jsonl.replay-*"))
    finally:
        _release_lock(fd)
    claimed = claim(path)
    assert claimed is not None and not path.exists()
    assert "Run finished: a" in claimed.read_text()
