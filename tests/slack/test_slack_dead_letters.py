"""The dead-letter file: what could not be rendered or serialised is kept; claims wait for appenders."""

from __future__ import annotations

import json

from helpers.dead_letters import (
    dead_letter_file,
    dead_letters,
    hold_lock,
    release_lock,
    write_entries,
)
from helpers.slack_stub import FAST_SETTINGS as FAST
from mlflow_monitor.events import Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.dead_letter import (
    DeadLetterFile,
    claim,
    lock_path,
)
from mlflow_monitor.integrations.slack.messages import SlackMessage


def test_an_event_the_renderer_fails_on_is_dead_lettered_as_redacted_plain_text(webhook_env):
    notifier = slack.enable(FAST)
    leaky = f"churn {webhook_env.webhook_url}"  # a secret in event data must not reach the file
    publish(Verdict(model_name=leaky, version="7", target="alias:champion", passed=False,
                    failed_rules=["not-a-mapping"]))  # the renderer expects dicts here
    assert notifier.flush(10)
    assert webhook_env.messages == []
    (entry,) = dead_letters()
    assert "could not render" in entry["reason"]
    message = entry["message"]
    assert message["kind"] == "verdict" and message["blocks"] == []
    assert "model_name=churn" in message["text"] and "version=7" in message["text"]
    assert message["thread"] == {"kind": "model_version", "key": [leaky.replace(webhook_env.webhook_url,
                                                                                 "[redacted]"), "7"]}
    assert webhook_env.webhook_path not in dead_letter_file().read_text()


def test_a_message_that_does_not_serialise_is_kept_as_its_text(tmp_path):
    dead = DeadLetterFile(tmp_path / "slack.jsonl")
    odd = SlackMessage("verdict", "BLOCKED: m v1", [{("not", "a str key"): 1}], "verdict:m:1")
    dead.write(odd, "HTTP 503")  # must not raise
    (line,) = (tmp_path / "slack.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry["message"]["text"] == "BLOCKED: m v1" and entry["message"]["blocks"] == []
    assert entry["reason"].startswith("HTTP 503; blocks dropped")


def test_claim_waits_for_an_appender_holding_the_lock(tmp_path):
    path = tmp_path / "slack.jsonl"
    write_entries(path, "Run finished: a")
    fd = hold_lock(lock_path(path))  # a writer is appending
    try:
        assert claim(path, lock_timeout=0.2) is None  # not moved under the writer
        assert path.exists() and not list(tmp_path.glob("slack.jsonl.replay-*"))
    finally:
        release_lock(fd)
    claimed = claim(path)
    assert claimed is not None and not path.exists()
    assert "Run finished: a" in claimed.read_text()
