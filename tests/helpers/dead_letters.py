"""Slack dead-letter helpers for the Slack tests: read the file, hold its lock, write entries."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from mlflow_monitor import paths
from mlflow_monitor.integrations.slack.dead_letter import DeadLetterFile
from mlflow_monitor.integrations.slack.messages import SlackMessage


def dead_letter_file() -> Path:
    """The Slack dead-letter file of this test's MLFLOW_MONITOR_HOME."""
    return paths.dead_letter_dir() / "slack.jsonl"


def dead_letters() -> list[dict]:
    """Its entries, oldest first ([] when there is no file)."""
    path = dead_letter_file()
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def hold_lock(path: Path) -> int:
    """Take the exclusive lock another replayer would hold; returns the fd for release_lock."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def release_lock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def write_entries(path: Path, *texts: str) -> None:
    """Dead-letter one run-summary message per text."""
    dead = DeadLetterFile(path)
    for text in texts:
        dead.write(SlackMessage("run_summary", text, [], f"run:{text}:FINISHED"), "HTTP 503")
