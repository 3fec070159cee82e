"""One promotion at a time per (registry, model, target), across threads, processes and hosts.

The verdict, the champion re-read, the override consumption, the registry write and the
audit append all happen under this lock, so a failing version can never end up holding
the target while a passing one is being promoted, and an override is used once.

The lock is the registry database's own:

- **PostgreSQL:** a session-level ``pg_advisory_lock`` taken on a dedicated connection and
  held, outside any transaction, until the promotion is done. Not the transaction-scoped
  ``pg_advisory_xact_lock`` (it would hold a transaction open on our connection for the
  whole evaluation) and not ``SELECT ... FOR UPDATE`` on MLflow's rows: MLflow's own write
  of that row, from its own connection, would wait on us while we wait on it. A crashed
  holder's session ends and PostgreSQL frees the lock.
- **MySQL/MariaDB:** ``GET_LOCK`` on a dedicated connection (session-level, the same way).
- **sqlite:** an ``flock`` on a lock file beside the database, so every process using the
  file shares it, whatever its ``MLFLOW_MONITOR_HOME``.
- **any other store** (file, http): an ``flock`` under ``MLFLOW_MONITOR_HOME`` (one host).

Threads of one process queue on an in-process lock first. Waiting is bounded by
:data:`LOCK_TIMEOUT_S`; past it the promotion fails with ``RESOURCE_CONFLICT`` (HTTP 409).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from mlflow_monitor.gate.audit_db import Database, database_of, engine_for
from mlflow_monitor.gate.errors import promotion_busy
from mlflow_monitor.gate.escaping import safe_text

__all__ = ["LOCK_TIMEOUT_S", "promotion_lock"]

_logger = logging.getLogger(__name__)

#: Longest a promotion waits for another promotion of the same model and target.
LOCK_TIMEOUT_S = 600.0

#: First key of our two-key ``pg_advisory_lock`` calls ("mmgt"): keeps clear of other
#: applications' single-key advisory locks in the same database.
_PG_NAMESPACE = 0x6D6D6774

_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


@contextmanager
def promotion_lock(store_uri: str, name: str, target: str) -> Iterator[None]:
    """Hold the lock of (``store_uri``'s registry, ``name``, ``target``) for the block.

    ``store_uri`` is the inner registry store URI (``monitor:`` stripped or not). Raises
    ``MlflowException(RESOURCE_CONFLICT)`` after :data:`LOCK_TIMEOUT_S` of waiting.
    """
    timeout = LOCK_TIMEOUT_S
    db = database_of(store_uri)
    digest = hashlib.sha256(f"{name}\0{target}".encode()).hexdigest()
    local_key = hashlib.sha256(f"{db.uri if db else store_uri}\0{digest}".encode()).hexdigest()[:32]
    with _thread_locks_guard:
        tlock = _thread_locks.setdefault(local_key, threading.Lock())
    deadline = time.monotonic() + timeout
    if not tlock.acquire(timeout=timeout):
        raise _busy(name, target, timeout)
    try:
        if db is not None and db.kind == "postgresql":
            held = _pg_lock(db, digest, deadline)
        elif db is not None and db.kind == "mysql":
            held = _mysql_lock(db, digest, deadline)
        else:
            held = _file_lock(_lock_dir(db), local_key, deadline)
        with held as acquired:
            if not acquired:
                raise _busy(name, target, timeout)
            yield
    finally:
        tlock.release()


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


@contextmanager
def _pg_lock(db: Database, digest: str, deadline: float) -> Iterator[bool]:
    import sqlalchemy as sa

    key = int(digest[:8], 16) - (1 << 31)  # a signed int4
    conn = engine_for(db).connect()
    try:
        try:
            # lock_timeout bounds the wait; set_config(..., true) is local to this transaction
            conn.execute(sa.text("SELECT set_config('lock_timeout', :t, true)"),
                         {"t": f"{max(1, int(_remaining(deadline) * 1000))}ms"})
            conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :k)"), {"ns": _PG_NAMESPACE, "k": key})
            conn.commit()  # the lock is the session's: it outlives this transaction
        except sa.exc.OperationalError as exc:
            conn.rollback()
            orig = getattr(exc, "orig", None)
            if "55P03" in (getattr(orig, "sqlstate", None), getattr(orig, "pgcode", None)):  # lock_not_available
                yield False
                return
            raise
        try:
            yield True
        finally:
            _release(conn, "SELECT pg_advisory_unlock(:ns, :k)", {"ns": _PG_NAMESPACE, "k": key})
    finally:
        conn.close()


@contextmanager
def _mysql_lock(db: Database, digest: str, deadline: float) -> Iterator[bool]:
    import sqlalchemy as sa

    lock_name = f"mlflow_monitor:{hashlib.sha256(f'{db.name}:{digest}'.encode()).hexdigest()[:48]}"
    conn = engine_for(db).connect()
    try:
        got = conn.execute(sa.text("SELECT GET_LOCK(:n, :t)"),
                           {"n": lock_name, "t": round(_remaining(deadline), 3)}).scalar()
        conn.commit()
        if got != 1:  # 0: timed out; NULL: an error (killed, out of memory)
            yield False
            return
        try:
            yield True
        finally:
            _release(conn, "SELECT RELEASE_LOCK(:n)", {"n": lock_name})
    finally:
        conn.close()


def _release(conn: Any, sql: str, params: dict[str, Any]) -> None:
    import sqlalchemy as sa

    try:
        conn.execute(sa.text(sql), params)
        conn.commit()
    except Exception as exc:  # the session is gone or broken: closing it frees the lock
        _logger.warning("mlflow-monitor: releasing the promotion lock failed (%s); dropping the "
                        "connection, which releases it", type(exc).__name__)
        conn.invalidate()


def _lock_dir(db: Any) -> Path:
    """Beside the sqlite file when we may write there, else under ``MLFLOW_MONITOR_HOME``."""
    from mlflow_monitor.paths import monitor_home, private_dir

    path = db.sqlite_path if db is not None else None
    if path is not None:
        beside = path.parent / f".{path.name}.mlflow-monitor-locks"
        try:
            beside.mkdir(mode=0o700, exist_ok=True)
            return beside
        except OSError:
            pass
    return private_dir(monitor_home() / "locks")


@contextmanager
def _file_lock(folder: Path, key: str, deadline: float) -> Iterator[bool]:
    from mlflow_monitor.paths import open_private

    with open_private(folder / f"{key}.lock", "a+") as fh:
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    yield False
                    return
                time.sleep(0.02)
        try:
            yield True
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _busy(name: str, target: str, timeout: float) -> Exception:
    return promotion_busy(
        f"another promotion of model '{safe_text(name)}' to {safe_text(target)} is still being "
        f"evaluated after {timeout:.0f}s; try again later")
