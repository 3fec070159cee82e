"""The dead-letter file: Slack messages that could not be delivered, as JSON lines.

Each line holds the rendered message (text, blocks, thread, channel override) and why
it failed, never a token or webhook URL. ``mlflow-monitor slack replay`` resends them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from mlflow_monitor import paths
from mlflow_monitor.integrations.slack_messages import SlackMessage
from mlflow_monitor.integrations.slack_redact import redact

_logger = logging.getLogger(__name__)

FILE_NAME = "slack.jsonl"


def default_path() -> Path:
    return paths.dead_letter_dir() / FILE_NAME


class DeadLetterFile:
    """Append-only JSON-lines file of undeliverable messages (thread-safe appends)."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self._path = Path(path) if path else None
        self._lock = threading.Lock()
        self.count = 0  # messages written by this process
        self._warned = False

    @property
    def path(self) -> Path:
        return self._path or default_path()

    def write(self, message: SlackMessage, reason: str) -> None:
        """Append ``message``; never raises (a failure is logged with the message kind)."""
        entry = {"failed_at": time.time(), "reason": redact(reason)[:500], "message": message.to_dict()}
        line = redact(json.dumps(entry, default=str)) + "\n"
        try:
            with self._lock:
                path = self.path
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(line)
                self.count += 1
        except OSError as exc:
            _logger.error("mlflow-monitor: could not write Slack %s message to dead-letter file %s: %s",
                          message.kind, self.path, exc)
            return
        if not self._warned:
            self._warned = True
            _logger.warning("mlflow-monitor: Slack message not delivered (%s); kept in %s -- resend with "
                            "`mlflow-monitor slack replay`", redact(reason)[:200], path)

    def read(self) -> Iterator[tuple[dict[str, Any], SlackMessage]]:
        """Entries of the file as ``(raw entry, message)``; unreadable lines are skipped and logged."""
        yield from read_entries(self.path)


def read_entries(path: Path) -> Iterator[tuple[dict[str, Any], SlackMessage]]:
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                yield entry, SlackMessage.from_dict(entry["message"])
            except (ValueError, KeyError, TypeError) as exc:
                _logger.warning("mlflow-monitor: skipping unreadable line %d of %s: %s", n, path, exc)


def claim(path: Path) -> Optional[Path]:
    """Atomically move ``path`` aside for a replay, so new failures go to a fresh file."""
    if not path.exists():
        return None
    claimed = path.with_name(f"{path.name}.replay-{os.getpid()}-{int(time.time() * 1000)}")
    os.replace(path, claimed)
    return claimed


def append_entries(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry, default=str) + "\n")
