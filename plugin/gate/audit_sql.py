"""The audit table in the registry's own database (sqlite, PostgreSQL, MySQL/MariaDB).

Two tables, created and migrated by the plugin on first use:

- ``mlflow_monitor_audit``: one row per record (``seq``, the indexed columns, the
  canonical JSON, ``prev_hash``, ``hash``, ``mac``). Our code only ever inserts.
- ``mlflow_monitor_audit_head``: one row (``id = 1``): ``schema_version``, and the
  chain's tail (``last_seq``, ``last_hash``, ``mac``), which lets ``verify`` see a
  deleted last record.

Appends are serialised by the head row: each append is one short transaction on our
own tables that reads the head ``FOR UPDATE`` (PostgreSQL, MySQL/MariaDB: a row lock;
sqlite: ``BEGIN IMMEDIATE``, the database's write lock), inserts the row after it and
moves the head. A concurrent writer waits for that row, then sees the new tail, so the
chain cannot fork; ``seq`` is the primary key, so even a database that ignored the
lock could not store two rows at one position (the loser retries). Nothing here
touches MLflow's tables, so it cannot deadlock with MLflow's own writes.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Iterator, Optional

from mlflow_monitor.gate.audit_chain import (
    GENESIS,
    AuditRow,
    audit_key,
    canonical_json,
    chain_hash,
    head_mac,
    record_mac,
)
from mlflow_monitor.gate.audit_db import Database, engine_for

__all__ = ["AUDIT_TABLE", "HEAD_TABLE", "SCHEMA_VERSION", "SqlAudit"]

_logger = logging.getLogger(__name__)

AUDIT_TABLE = "mlflow_monitor_audit"
HEAD_TABLE = "mlflow_monitor_audit_head"
SCHEMA_VERSION = 1
_ATTEMPTS = 8

# record key -> column (``user`` is reserved in PostgreSQL)
COLUMNS = {"event": "event", "model_name": "model_name", "version": "version", "target": "target",
           "user": "actor"}

_ready: set[str] = set()
_ready_guard = threading.Lock()


def _tables() -> tuple[Any, Any, Any]:
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql

    meta = sa.MetaData()
    long_text = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
    audit = sa.Table(
        AUDIT_TABLE, meta,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("record_id", sa.String(32), nullable=False, unique=True),
        sa.Column("ts", sa.String(40), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(256)),
        sa.Column("version", sa.String(256)),
        sa.Column("target", sa.String(256)),
        sa.Column("actor", sa.String(256)),
        sa.Column("record", long_text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64)),
        sa.Index("ix_mlflow_monitor_audit_model", "model_name", "version"),
    )
    head = sa.Table(
        HEAD_TABLE, meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64)),
    )
    return meta, audit, head


_META, _AUDIT, _HEAD = _tables()

# schema_version -> the step that brings a database from it to the next version
_MIGRATIONS: dict[int, Any] = {}


class SqlAudit:
    """The audit chain in ``db``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._engine = engine_for(db)

    def describe(self) -> str:
        from mlflow_monitor.redaction import redact_uri

        return f"table {AUDIT_TABLE} in {redact_uri(self.db.uri)}"

    # -- schema ------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Create or migrate the tables (once per process and database)."""
        with _ready_guard:
            if self.db.uri in _ready:
                return
            self._create_or_migrate()
            _ready.add(self.db.uri)

    def _create_or_migrate(self) -> None:
        import sqlalchemy as sa

        for attempt in range(_ATTEMPTS):
            try:
                _META.create_all(self._engine, checkfirst=True)
                break
            except sa.exc.DBAPIError:  # another process is creating them at this moment
                if attempt == _ATTEMPTS - 1:
                    raise
                time.sleep(0.1 * (attempt + 1))
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(_HEAD).where(_HEAD.c.id == 1)).first()
        if row is None:
            try:
                with self._engine.begin() as conn:
                    conn.execute(_HEAD.insert().values(id=1, schema_version=SCHEMA_VERSION, last_seq=0,
                                                       last_hash=GENESIS, mac=None))
            except sa.exc.IntegrityError:
                pass  # a concurrent first writer made it
        else:
            self._migrate(int(row.schema_version))

    def _migrate(self, found: int) -> None:
        import sqlalchemy as sa

        if found > SCHEMA_VERSION:
            raise RuntimeError(f"the audit table {AUDIT_TABLE} has schema version {found}, newer than "
                               f"this mlflow-monitor understands ({SCHEMA_VERSION}): upgrade mlflow-monitor")
        while found < SCHEMA_VERSION:
            step = _MIGRATIONS[found]
            with self._engine.begin() as conn:
                step(conn)
                conn.execute(sa.update(_HEAD).where(_HEAD.c.id == 1).values(schema_version=found + 1))
            found += 1

    # -- append ------------------------------------------------------------------------
    def append(self, body: dict[str, Any]) -> int:
        """Store ``body`` (already made by ``new_record``) after the current tail; its seq."""
        import sqlalchemy as sa

        self.ensure_schema()
        key = audit_key()
        text = canonical_json(body)
        for attempt in range(_ATTEMPTS):
            try:
                with self._engine.begin() as conn:
                    head = conn.execute(sa.select(_HEAD).where(_HEAD.c.id == 1).with_for_update()).one()
                    seq, prev = int(head.last_seq) + 1, str(head.last_hash)
                    digest = chain_hash(prev, body)
                    conn.execute(_AUDIT.insert().values(
                        seq=seq, record_id=body["id"], ts=str(body.get("ts", ""))[:40],
                        event=str(body.get("event", ""))[:64], record=text, prev_hash=prev, hash=digest,
                        mac=record_mac(key, digest) if key else None,
                        **{col: _column_value(body.get(k)) for k, col in COLUMNS.items() if col != "event"}))
                    conn.execute(sa.update(_HEAD).where(_HEAD.c.id == 1).values(
                        last_seq=seq, last_hash=digest, mac=head_mac(key, seq, digest) if key else None))
                return seq
            except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
                # a deadlock victim or a lost race for a position: take the new tail and retry
                if attempt == _ATTEMPTS - 1:
                    raise
                _logger.debug("mlflow-monitor audit: append retried after %s", type(exc).__name__)
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    # -- read --------------------------------------------------------------------------
    def rows(self, *, model_name: Optional[str] = None, version: Optional[str] = None) -> Iterator[AuditRow]:
        """Rows by position, optionally of one model (and version)."""
        import json

        import sqlalchemy as sa

        self.ensure_schema()
        query = sa.select(_AUDIT).order_by(_AUDIT.c.seq)
        if model_name is not None:
            query = query.where(_AUDIT.c.model_name == model_name)
        if version is not None:
            query = query.where(_AUDIT.c.version == str(version))
        with self._engine.connect() as conn:
            for r in conn.execute(query):
                try:
                    record = json.loads(r.record)
                    if not isinstance(record, dict):
                        raise ValueError("not an object")
                except ValueError:
                    record = {"id": r.record_id, "unreadable": True}
                columns = {k: getattr(r, col) for k, col in COLUMNS.items()}
                columns["id"] = r.record_id
                yield AuditRow(int(r.seq), r.prev_hash, r.hash, r.mac, record, columns=columns)

    def head(self) -> tuple[int, str, Optional[str]]:
        import sqlalchemy as sa

        self.ensure_schema()
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(_HEAD).where(_HEAD.c.id == 1)).one()
        return int(row.last_seq), str(row.last_hash), row.mac


def _column_value(value: Any) -> Optional[str]:
    return None if value is None else str(value)[:256]
