"""One promotion at a time per (registry, model, target), across threads and processes.

The verdict and the alias/stage change happen under this lock, so a failing version can
never end up holding the target while a passing one is being promoted.
"""

from __future__ import annotations

import fcntl
import hashlib
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from mlflow_monitor.gate.errors import promotion_busy
from mlflow_monitor.gate.escaping import safe_text

__all__ = ["LOCK_TIMEOUT_S", "promotion_lock"]

#: Longest a promotion waits for another promotion of the same model and target.
LOCK_TIMEOUT_S = 600.0

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def promotion_lock(store_key: str, name: str, target: str) -> Iterator[None]:
    """Serialise promotions of one model to one target: threads in this process, and
    processes on this host (``mlflow server --workers N``) through a lock file under
    ``MLFLOW_MONITOR_HOME``. Bounded by :data:`LOCK_TIMEOUT_S`; past it raises
    ``MlflowException(RESOURCE_CONFLICT)``."""
    from mlflow_monitor.paths import monitor_home

    timeout = LOCK_TIMEOUT_S
    key = hashlib.sha256(f"{store_key}\0{name}\0{target}".encode()).hexdigest()[:32]
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(key, threading.Lock())
    deadline = time.monotonic() + timeout
    if not tlock.acquire(timeout=timeout):
        raise _busy(name, target, timeout)
    try:
        lock_dir = monitor_home() / "locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{key}.lock", "a+") as fh:
            while True:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise _busy(name, target, timeout) from None
                    time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    finally:
        tlock.release()


def _busy(name: str, target: str, timeout: float) -> Exception:
    return promotion_busy(
        f"another promotion of model '{safe_text(name)}' to {safe_text(target)} is still being "
        f"evaluated after {timeout:.0f}s; try again later")
