"""The gate's append-only, hash-chained audit log.

Where it lives follows the registry store the gate wraps:

- a SQL registry (sqlite, PostgreSQL, MySQL/MariaDB): the table ``mlflow_monitor_audit``
  in that same database (:mod:`.audit_sql`), created and migrated by the plugin;
- any other store (file store, http(s), databricks): ``$MLFLOW_MONITOR_HOME/audit/gate.jsonl``
  on the machine that ran the gate, mode 0600 (:mod:`.audit_file`).

Both hold the same chain (:mod:`.audit_chain`): each record carries the hash of the one
before, and with ``MLFLOW_MONITOR_AUDIT_KEY`` set an HMAC. ``mlflow-monitor audit
verify`` (:func:`verify_audit`) names any record edited, deleted or moved.

Records are dicts keyed ``event`` (``verdict``, ``policy_change``, ``override_requested``,
``override_approved``, ``override_used``, ``refused_write``), ``user``, ``model_name``,
``version``, ``target``, ``reason`` and details; a verdict summary
(``summary_of(decision)``) is accepted as it is (event ``verdict``). Secrets are redacted
before anything is stored.
"""

from __future__ import annotations

import contextvars
import dataclasses
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from mlflow_monitor.gate.audit_chain import Problem, audit_key, new_record, verify_rows
from mlflow_monitor.gate.audit_db import database_of, strip_monitor_scheme
from mlflow_monitor.gate.audit_file import FileAudit, audit_log_path
from mlflow_monitor.gate.audit_sql import SqlAudit

__all__ = ["AuditReport", "append_audit", "audit_log_path", "audit_scope", "audit_store", "read_audit_log",
           "resolve_store_uri", "verify_audit", "verify_store"]

AuditStore = Union[SqlAudit, FileAudit]


@dataclasses.dataclass
class _Scope:
    store_uri: Optional[str]
    extra: dict[str, Any]


_scope: contextvars.ContextVar[Optional[_Scope]] = contextvars.ContextVar("mlflow_monitor_audit_scope",
                                                                          default=None)


@contextmanager
def audit_scope(store_uri: Optional[str], **extra: Any) -> Iterator[dict[str, Any]]:
    """Within the block, records go to ``store_uri``'s audit and get ``extra``'s keys
    (those they do not set themselves). Yields ``extra``, which the caller may fill in
    later (the gate adds the champion of the moment once it has read it under its lock)."""
    token = _scope.set(_Scope(store_uri, dict(extra)))
    try:
        yield _scope.get().extra  # type: ignore[union-attr]
    finally:
        _scope.reset(token)


def resolve_store_uri(store_uri: Optional[str] = None) -> Optional[str]:
    """``store_uri``, else the one of the enclosing :func:`audit_scope`, else the
    ``--registry-store-uri`` of the server we run in, else the current registry URI."""
    if store_uri:
        return strip_monitor_scheme(store_uri)
    scope = _scope.get()
    if scope is not None and scope.store_uri:
        return strip_monitor_scheme(scope.store_uri)
    from mlflow_monitor.mlflow_compat import server_registry_store_uri

    server = server_registry_store_uri()
    if server:
        return strip_monitor_scheme(server)
    import mlflow

    return strip_monitor_scheme(mlflow.get_registry_uri() or "") or None


def audit_store(store_uri: Optional[str] = None) -> AuditStore:
    """The audit of ``store_uri`` (see :func:`resolve_store_uri`): its SQL table, or the local file."""
    db = database_of(resolve_store_uri(store_uri))
    return SqlAudit(db) if db is not None else FileAudit()


def append_audit(record: dict[str, Any], *, store_uri: Optional[str] = None) -> None:
    """Append ``record`` to the audit chain of ``store_uri`` (serialised against every
    other writer of that audit, in any process or host sharing the database)."""
    scope = _scope.get()
    body = new_record(record, extra=scope.extra if scope is not None else None)
    audit_store(store_uri).append(body)


def read_audit_log(path: Optional[Path] = None, *, store_uri: Optional[str] = None,
                   model_name: Optional[str] = None, version: Optional[str] = None) -> list[dict[str, Any]]:
    """The records (oldest first) of the file ``path``, else of ``store_uri``'s audit."""
    store: AuditStore = FileAudit(path) if path is not None else audit_store(store_uri)
    return [row.record for row in store.rows(model_name=model_name, version=version)]


@dataclasses.dataclass
class AuditReport:
    """What :func:`verify_audit` found."""

    source: str
    records: int
    last_seq: int
    keyed: bool
    problems: list[Problem]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit(store_uri: Optional[str] = None, *, path: Optional[Path] = None) -> AuditReport:
    """Check every record of the audit (``path``'s file, else ``store_uri``'s)."""
    return verify_store(FileAudit(path) if path is not None else audit_store(store_uri))


def verify_store(store: AuditStore) -> AuditReport:
    """Check every record of ``store`` (see :func:`audit_store`)."""
    rows = list(store.rows())
    key = audit_key()
    problems, notes = verify_rows(rows, key=key, head=store.head())
    return AuditReport(store.describe(), len(rows), rows[-1].seq if rows else 0, key is not None,
                       problems, notes)
