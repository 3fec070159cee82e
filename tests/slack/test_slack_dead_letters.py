"""The dead-letter file: what could not be rendered or serialised is kept; claims wait for appenders."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from helpers.slack_stub import FAST_SETTINGS as FAST

from mlflow_monitor import paths
from mlflow_monitor.events import Verdict, publish
from mlflow_monitor.integrations import slack
from mlflow_monitor.integrations.slack.dead_letter import DeadLetterFile, claim, lock_path
from mlflow_monitor.integrations.slack.messages import SlackMessage


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


def _write_entries(path: Path, *texts: str) -> None:
    dead = DeadLetterFile(path)
    for text in texts:
        dead.write(SlackMessage("run_summary", text, [], f"run:{text}:FINISHED"), "HTTP 503")


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
