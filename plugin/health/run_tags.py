"""Writes health tags on MLflow runs from a small background thread.

Tagging is I/O (and may hang while the tracking server is down), so the pipeline's
flusher only enqueues here; a bounded queue, one daemon thread, errors logged.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Optional

_logger = logging.getLogger(__name__)

MAX_TAG_VALUE = 250


class RunTagWriter:
    """``tag(run_id, key, value)`` never blocks or raises; ``flush``/``close`` are bounded."""

    def __init__(self, client_factory: Optional[Callable[[], Any]] = None, maxsize: int = 1000) -> None:
        self._client_factory = client_factory or _default_client
        self._maxsize = maxsize
        self._items: collections.deque[tuple[str, str, str]] = collections.deque()
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread: Optional[threading.Thread] = None
        self.dropped = 0

    def tag(self, run_id: str, key: str, value: str) -> None:
        with self._cond:
            if self._closed or len(self._items) >= self._maxsize:
                self.dropped += 1
                _logger.warning("mlflow-monitor: health tag %s for run %s not written (tag queue full)", key, run_id)
                return
            self._items.append((run_id, key, value[:MAX_TAG_VALUE]))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mlflow-monitor-health-tags", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._items or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout)
        with self._cond:
            self._closed = True
            if self._items:
                _logger.warning("mlflow-monitor: %d health tag(s) not written before exit", len(self._items))
            self._items.clear()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                run_id, key, value = self._items.popleft()
                self._busy = True
            try:
                self._client_factory().set_tag(run_id, key, value)  # current tracking URI
            except Exception as exc:
                _logger.warning("mlflow-monitor: could not tag run %s with %s: %s", run_id, key, exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


def _default_client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()
