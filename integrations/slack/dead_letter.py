"""The dead-letter file: Slack messages that could not be delivered, as JSON lines.

Each line holds the rendered message (text, blocks, thread, channel override) and why
it failed, never a token or webhook URL. ``mlflow-monitor slack replay`` resends them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from mlflow_monitor import paths
from mlflow_monitor.paths import open_private, private_dir
from mlflow_monitor.integrations.slack.messages import SlackMessage
from mlflow_monitor.redaction import redact

_logger = logging.getLogger(__name__)

FILE_NAME = "slack.jsonl"
LOCK_WAIT_S = 5.0  # appends and claims hold the lock for one write or one rename


def lock_path(path: Path) -> Path:
    """The lock file appenders and :func:`claim` share (``slack.jsonl.lock``)."""
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def file_lock(path: Path, timeout: Optional[float] = LOCK_WAIT_S, without_lock: str = "appending"):
    """Hold ``fcntl.flock`` on ``path`` (created if missing); yields True when locked.

    Waits at most ``timeout`` s (None: do not wait at all) and yields False when the
    lock was not had: the caller decides (an appender appends anyway: a message is
    worth more than the race; a claim backs off).
    """
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    locked = False
    try:
        deadline = time.monotonic() + (timeout or 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if timeout is None or time.monotonic() >= deadline:
                    break
                time.sleep(0.01)
        if not locked and without_lock:
            _logger.warning("mlflow-monitor: %s is locked by another process; %s without the lock", path,
                            without_lock)
        yield locked
    finally:
        if locked:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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
        """Append ``message``; never raises (a failure is logged with the message kind).

        The append holds the file's lock, which :func:`claim` takes before moving the file
        aside, so no line lands in a file a replay already read.
        """
        path = self.path
        try:
            line = redact(_entry_line(message, reason)) + "\n"
            with self._lock, file_lock(lock_path(path)):
                private_dir(path.parent)
                with open_private(path, "a", encoding="utf-8") as fh:
                    fh.write(line)
                self.count += 1
        except Exception as exc:
            _logger.error("mlflow-monitor: could not write Slack %s message to dead-letter file %s: %s",
                          getattr(message, "kind", "?"), path, redact(exc))
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


def _entry_line(message: SlackMessage, reason: str) -> str:
    """One JSON line; a message that does not serialise is kept as its plain text."""
    failed_at, why = time.time(), redact(reason)[:500]
    try:
        return json.dumps({"failed_at": failed_at, "reason": why, "message": message.to_dict()}, default=str)
    except Exception as exc:  # odd values in blocks (non-string keys, cycles, ...): keep the text
        minimal = {"kind": str(getattr(message, "kind", "event")), "text": str(getattr(message, "text", "")),
                   "blocks": [], "dedup_key": str(getattr(message, "dedup_key", "")),
                   "thread": None, "channel": None, "created": failed_at}
        try:
            minimal["thread"] = message.thread.to_dict() if message.thread else None
            minimal["channel"] = message.channel
        except Exception:
            pass
        why = f"{why}; blocks dropped, not serialisable: {type(exc).__name__}: {exc}"[:500]
        return json.dumps({"failed_at": failed_at, "reason": why, "message": minimal}, default=str)


def claim(path: Path, lock_timeout: float = LOCK_WAIT_S) -> Optional[Path]:
    """Atomically move ``path`` aside for a replay, so new failures go to a fresh file.

    Takes the appenders' lock first, so every append has finished before the rename
    (and later ones open the fresh file); None when there is no file, or when the lock
    could not be had within ``lock_timeout`` s (nothing is moved then).
    """
    with file_lock(lock_path(path), lock_timeout, "not claiming the file (nothing moved)") as locked:
        if not locked or not path.exists():
            return None
        claimed = path.with_name(f"{path.name}.replay-{os.getpid()}-{int(time.time() * 1000)}")
        os.replace(path, claimed)
        return claimed


def append_entries(path: Path, entries: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(entry, default=str) + "\n" for entry in entries)
    with file_lock(lock_path(path)):
        private_dir(path.parent)
        with open_private(path, "a", encoding="utf-8") as fh:
            fh.write(lines)


def rewrite_entries(path: Path, entries: list[dict[str, Any]]) -> None:
    """Replace ``path`` atomically with ``entries`` (a replay's progress)."""
    tmp = path.with_name(f".{path.name}.tmp")  # a dot name: not matched by the replay-* glob
    with open_private(tmp, "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(entry, default=str) + "\n" for entry in entries))
    os.replace(tmp, path)
