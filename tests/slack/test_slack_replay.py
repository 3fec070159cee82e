"""Dead letters and `mlflow-monitor slack replay`: resend, keep what fails, one replay at a time."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from helpers.dead_letters import (
    dead_letter_file,
    dead_letters,
    hold_lock,
    release_lock,
    write_entries,
)
from helpers.slack_stub import FAST_SETTINGS as FAST
from mlflow_monitor.cli import main
from mlflow_monitor.events import RunSummary, Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.cli import replay_file, replay_lock_path
from mlflow_monitor.integrations.slack.config import SlackConfig


def test_replay_resends_dead_letters_and_removes_what_was_delivered(webhook_env):
    webhook_env.fail_next(None, status=503)
    notifier = slack.enable({**FAST, "max_retries": 0})
    publish(Verdict(model_name="m", version="1", target="alias:champion", passed=False))
    publish(RunSummary(run_id="r1", status="FINISHED", duration_s=3))
    assert notifier.flush(10)
    slack.disable()
    assert len(dead_letter_file().read_text().splitlines()) == 2
    webhook_env.clear_faults()

    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code == 0, result.output
    assert "replayed 2 message(s)" in result.output
    msgs = webhook_env.wait_for_messages(2)
    assert [m["text"].split(":")[0] for m in msgs] == ["BLOCKED", "Run finished"]
    assert not dead_letter_file().exists() or dead_letter_file().read_text() == ""


def test_replay_keeps_what_still_fails_and_exits_nonzero(webhook_env, tmp_path):
    webhook_env.fail_next(None, status=503)
    notifier = slack.enable({**FAST, "max_retries": 0})
    publish(RunSummary(run_id="r1", status="FAILED", duration_s=3))
    assert notifier.flush(10)
    slack.disable()

    result = CliRunner().invoke(main, ["slack", "replay", "--file", str(dead_letter_file())],
                                env={"SLACK_WEBHOOK_URL": webhook_env.webhook_url})
    assert result.exit_code == 1
    assert "1 kept" in result.output
    (entry,) = [json.loads(line) for line in dead_letter_file().read_text().splitlines()]
    assert entry["replay_attempts"] == 1 and entry["message"]["kind"] == "run_summary"


def test_replay_without_slack_configured_says_how_to_configure(tmp_path):
    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code != 0
    assert "SLACK_WEBHOOK_URL" in result.output


def test_a_concurrent_replay_does_not_resend_another_replays_file(webhook_env):
    path = dead_letter_file()
    write_entries(path, "Run finished: a")
    in_progress = path.with_name(f"{path.name}.replay-99999-1")  # the other replay's claimed file
    write_entries(in_progress, "Run finished: b")
    fd = hold_lock(replay_lock_path(path))  # the other replay is running
    try:
        result = CliRunner().invoke(main, ["slack", "replay"])
        assert result.exit_code != 0 and "another" in result.output
        assert webhook_env.requests == [] and path.exists() and in_progress.exists()
    finally:
        release_lock(fd)
    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code == 0, result.output
    assert sorted(m["text"] for m in webhook_env.wait_for_messages(2)) == ["Run finished: a", "Run finished: b"]
    assert not in_progress.exists()


def test_replay_keeps_going_past_an_unexpected_error_and_persists_progress(webhook_env, monkeypatch):
    path = dead_letter_file()
    write_entries(path, "Run finished: a", "Run finished: boom", "Run finished: c", "Run finished: stop")
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
    (kept,) = dead_letters()
    assert kept["message"]["text"] == "Run finished: boom" and "RuntimeError: a bug" in kept["reason"]
    assert kept["replay_attempts"] == 2
