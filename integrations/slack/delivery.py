"""A bounded queue with one worker thread: delivery off the caller's thread, bounded waits."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable, Generic, Optional, TypeVar

_logger = logging.getLogger(__name__)

T = TypeVar("T")


class DeliveryWorker(Generic[T]):
    """Runs ``handle(item)`` for each submitted item on one daemon thread, in order.

    :meth:`submit` never blocks: it returns False when the queue is full or closed, and
    the caller decides what to do with the item (the notifier dead-letters it).
    :meth:`close` waits at most ``timeout`` and hands back what it could not handle.
    """

    def __init__(self, handle: Callable[[T], None], maxsize: int = 1000,
                 name: str = "mlflow-monitor-slack") -> None:
        self._handle = handle
        self._maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._in_flight: Optional[T] = None
        self._settled = False  # the in-flight item's outcome is recorded by the handler
        self._handed_back = False  # close() handed the in-flight item back: the handler records nothing
        self._closing = False
        self._abandoned = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> bool:
        with self._cond:
            if self._closing or len(self._items) >= self._maxsize:
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def flush(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until every submitted item was handled."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._items or self._in_flight is not None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float) -> list[T]:
        """Stop taking items, drain for at most ``timeout`` s, return the unhandled ones.

        An item still in flight at the deadline, whose handler has not settled it, is
        returned too and marked handed back: its handler then neither sends it (when it
        has not started yet, see :meth:`handed_back`) nor records it (see :meth:`settle`),
        so exactly one path records it. (A request already on the wire may still arrive:
        at-least-once beats lost.)
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self.flush(timeout)
        with self._cond:
            left = list(self._items)
            if self._in_flight is not None and not self._settled:
                left.insert(0, self._in_flight)
                self._handed_back = True
            self._items.clear()
            self._abandoned = True
            self._cond.notify_all()
        return left

    def handed_back(self) -> bool:
        """On the worker thread: True when close() already handed the current item back."""
        with self._cond:
            return self._handed_back

    def settle(self) -> bool:
        """On the worker thread, once the current item's outcome is known: may the handler record it?

        False when close() handed it back (close's caller records it); otherwise it is
        marked settled, so a later close() does not hand it back.
        """
        with self._cond:
            if self._handed_back:
                return False
            self._settled = True
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items or self._abandoned:
                    return
                item = self._items.popleft()
                self._in_flight = item
                self._settled = self._handed_back = False
            try:
                self._handle(item)
            except Exception:  # the handler dead-letters its own failures; this is a bug guard
                _logger.exception("mlflow-monitor: Slack delivery worker failed on an item")
            finally:
                with self._cond:
                    self._in_flight = None
                    self._cond.notify_all()
