"""Writes health tags on MLflow runs from a small background thread.

Tagging is I/O (and may hang while the tracking server is down), so the pipeline's
flusher only enqueues here; a bounded queue, one daemon thread, errors logged.

Each tag goes to the tracking URI the run is bound to in the metrics pipeline (else
the current one). Calls are bounded (:class:`~mlflow_monitor.bounded_client.BoundedClient`:
one request, no retries, a short timeout for http(s) stores, then a cool-down); a tag that
could not be written because the store is unavailable is kept (bounded) and retried on
the next write, and what is still unwritten at exit goes to
``$MLFLOW_MONITOR_HOME/dead_letter/health_tags.jsonl``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from pathlib import Path
from typing import Optional

from mlflow_monitor import paths
from mlflow_monitor.bounded_client import BoundedClient, StoreUnavailable, store_uri_for_run
from mlflow_monitor.redaction import redact, redact_uri

__all__ = ["DEAD_LETTER_FILE", "MAX_PENDING", "MAX_TAG_VALUE", "RunTagWriter", "dead_letter_path"]

_logger = logging.getLogger(__name__)

MAX_TAG_VALUE = 250
MAX_PENDING = 100  # tags kept for a retry while their store is unavailable
DEAD_LETTER_FILE = "health_tags.jsonl"


def dead_letter_path() -> Path:
    return paths.dead_letter_dir() / DEAD_LETTER_FILE


_Tag = tuple[str, str, str]  # (run_id, key, value)


class RunTagWriter:
    """``tag(run_id, key, value)`` never blocks or raises; ``flush``/``close`` are bounded.

    After ``close`` (at exit) a tag is written at once with one bounded call, since no
    thread is left to do it; what fails then goes to the dead-letter file.

    Tags whose store is unavailable are kept (at most ``max_pending``) and retried
    before the next write (and on ``flush``); what is left at ``close`` (or pushed out
    of the pending queue) is appended to the dead-letter file with a warning naming it.
    """

    def __init__(self, store: Optional[BoundedClient] = None, maxsize: int = 1000,
                 max_pending: int = MAX_PENDING, dead_letter: Optional[Path] = None) -> None:
        self.store = store or BoundedClient()
        self._maxsize = maxsize
        self._max_pending = max_pending
        self._dead_letter = dead_letter
        self._items: collections.deque[_Tag] = collections.deque()
        self._pending: collections.deque[_Tag] = collections.deque()
        self._retry = False
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._file_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._outage_logged = False
        self._warned_file = False
        self.dropped = 0  # tags not written to MLflow (in the dead-letter file, or rejected by the store)

    @property
    def pending(self) -> list[_Tag]:
        with self._cond:
            return list(self._pending)

    def tag(self, run_id: str, key: str, value: str) -> None:
        item = (run_id, key, value[:MAX_TAG_VALUE])
        with self._cond:
            if not self._closed and len(self._items) < self._maxsize:
                self._items.append(item)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="mlflow-monitor-health-tags",
                                                    daemon=True)
                    self._thread.start()
                self._cond.notify_all()
                return
            closed = self._closed
        if closed:  # at exit, after close(): the pipeline's final flush fired a rule. One bounded try.
            self._write(item)
        else:
            self._to_dead_letter([item], "tag queue full")

    def flush(self, timeout: float = 5.0) -> bool:
        """Write what is queued and retry pending tags once; True when nothing is left unwritten."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._pending and self._thread is not None and not self._closed:
                self._retry = True
                self._cond.notify_all()
            while self._items or self._busy or self._retry:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
            return not self._pending

    def close(self, timeout: float = 5.0) -> None:
        """Flush (bounded); what is still unwritten goes to the dead-letter file."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            left = list(self._pending) + list(self._items)
            self._pending.clear()
            self._items.clear()
            self._cond.notify_all()
        if left:
            self._to_dead_letter(left, "not written before exit (tracking store unavailable)")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._retry and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._items.popleft() if self._items else None
                retry, self._retry = list(self._pending), False
                self._pending.clear()
                self._busy = True
            try:
                for old in retry:  # older values first: the newest value of a key wins
                    self._write(old)
                if item is not None:
                    self._write(item)
            except Exception:  # a bug guard: never kill the writer thread
                _logger.exception("mlflow-monitor: health tag writer failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, item: _Tag) -> None:
        run_id, key, value = item
        uri = store_uri_for_run(run_id)
        try:
            self.store.set_run_tag(run_id, key, value, uri)
        except StoreUnavailable as exc:
            self._park(item, exc)
            return
        except Exception as exc:  # the store refused it (no such run, ...): retrying will not help
            self.dropped += 1
            _logger.warning("mlflow-monitor: could not tag run %s with %s: %s", run_id, key, exc)
            return
        self._outage_logged = False

    def _park(self, item: _Tag, exc: StoreUnavailable) -> None:
        spill: list[_Tag] = []
        with self._cond:
            if self._closed:
                spill.append(item)
            else:
                self._pending.append(item)
                while len(self._pending) > self._max_pending:
                    spill.append(self._pending.popleft())
        if not self._outage_logged and not exc.skipped:
            self._outage_logged = True
            _logger.warning("mlflow-monitor: health tag %s for run %s not written yet (%s); retrying on the "
                            "next write", item[1], item[0], exc)
        if spill:
            self._to_dead_letter(spill, f"tracking store unavailable: {exc}")

    def _to_dead_letter(self, items: list[_Tag], reason: str) -> None:
        self.dropped += len(items)
        path = self._dead_letter or dead_letter_path()
        now = time.time()
        try:
            lines = "".join(json.dumps({"failed_at": now, "reason": redact(reason)[:500], "run_id": run_id,
                                        "key": key, "value": redact(value),
                                        "tracking_uri": redact_uri(store_uri_for_run(run_id))},
                                       default=str) + "\n" for run_id, key, value in items)
            with self._file_lock:
                paths.private_dir(path.parent)
                with paths.open_private(path, "a", encoding="utf-8") as fh:
                    fh.write(lines)
        except Exception as exc:
            _logger.error("mlflow-monitor: %d health tag(s) lost (%s); could not write %s: %s",
                          len(items), reason, path, exc)
            return
        _logger.warning("mlflow-monitor: %d health tag(s) not written to MLflow (%s); kept in %s",
                        len(items), reason, path)
