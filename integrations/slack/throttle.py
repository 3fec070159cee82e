"""Dedup and throttle by key: one message per key per window, counting the rest."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional


class KeyedThrottle:
    """Lets one message per key through every ``min_interval_s``; counts what it holds back.

    ``admit(key)`` returns None when the message is suppressed, else how many were
    suppressed for that key since the last one got through (the next message says so).
    The clock is passed in, so tests can move time.
    """

    def __init__(self, min_interval_s: float = 600.0, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.min_interval_s = min_interval_s
        self._clock = clock
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}
        self._suppressed: dict[str, tuple[int, Any]] = {}  # key -> (count, last held-back item)

    def admit(self, key: str, item: Any = None) -> Optional[int]:
        now = self._clock()
        with self._lock:
            last = self._last_sent.get(key)
            if last is not None and now - last < self.min_interval_s:
                count, _ = self._suppressed.get(key, (0, None))
                self._suppressed[key] = (count + 1, item)
                return None
            self._last_sent[key] = now
            count, _ = self._suppressed.pop(key, (0, None))
            if len(self._last_sent) > self._max_keys:
                self._prune(now)
            return count

    def drain_suppressed(self) -> list[tuple[str, int, Any]]:
        """Every key with held-back messages: ``(key, count, last item)``; resets the counts."""
        with self._lock:
            out = [(k, c, item) for k, (c, item) in self._suppressed.items() if c > 0]
            self._suppressed.clear()
            return out

    def _prune(self, now: float) -> None:
        for key in [k for k, t in self._last_sent.items()
                    if now - t >= self.min_interval_s and k not in self._suppressed]:
            del self._last_sent[key]
