"""The registry's own database, as the gate's audit table and promotion locks use it.

``database_of(uri)`` says which kind of database a registry store URI names (sqlite,
PostgreSQL, MySQL/MariaDB) or None for stores that are not SQL (file, http, databricks);
``engine_for(uri)`` is one SQLAlchemy engine per URI and process, separate from MLflow's
own (its pool must not be drained by a lock held for a whole promotion).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any, Optional

__all__ = ["Database", "database_of", "dispose_engines", "engine_for", "strip_monitor_scheme"]

_MONITOR = "monitor:"
_KINDS = {"sqlite": "sqlite", "postgresql": "postgresql", "postgres": "postgresql",
          "mysql": "mysql", "mariadb": "mysql"}


@dataclasses.dataclass(frozen=True)
class Database:
    """A SQL registry database: ``kind`` is ``sqlite``, ``postgresql`` or ``mysql``."""

    uri: str
    kind: str
    name: str  # database name (sqlite: the file path, "" in memory)

    @property
    def sqlite_path(self) -> Optional[Path]:
        """The sqlite file, None for an in-memory database or another kind."""
        if self.kind != "sqlite" or not self.name or self.name == ":memory:":
            return None
        return Path(self.name).resolve()


def strip_monitor_scheme(uri: str) -> str:
    """``monitor:postgresql://...`` -> ``postgresql://...`` (anything else unchanged)."""
    while uri.startswith(_MONITOR):
        uri = uri[len(_MONITOR):]
        if uri.startswith("//"):
            uri = uri[2:]
    return uri


def database_of(uri: Optional[str]) -> Optional[Database]:
    """The SQL database ``uri`` names, else None (file store, http(s), databricks, mssql...)."""
    if not uri:
        return None
    uri = strip_monitor_scheme(uri)
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    kind = _KINDS.get(scheme)
    if kind is None or "://" not in uri:
        return None
    from sqlalchemy.engine import make_url

    try:
        url = make_url(uri)
    except Exception:
        return None
    return Database(uri=uri, kind=kind, name=url.database or "")


_engines: dict[str, Any] = {}
_engines_guard = threading.Lock()


def engine_for(db: Database) -> Any:
    """One engine per database URI in this process (sqlite: one connection per use, with
    ``BEGIN IMMEDIATE`` so a transaction takes sqlite's write lock before it reads)."""
    import sqlalchemy as sa

    with _engines_guard:
        engine = _engines.get(db.uri)
        if engine is not None:
            return engine
        if db.kind == "sqlite":
            from sqlalchemy.pool import NullPool

            engine = sa.create_engine(db.uri, poolclass=NullPool, connect_args={"timeout": 60})

            @sa.event.listens_for(engine, "connect")
            def _no_implicit_transactions(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we emit BEGIN ourselves

            @sa.event.listens_for(engine, "begin")
            def _write_lock_first(conn: Any) -> None:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            engine = sa.create_engine(db.uri, pool_pre_ping=True, pool_size=2, max_overflow=16,
                                      pool_recycle=1800)
        _engines[db.uri] = engine
        return engine


def dispose_engines() -> None:
    """Close every engine made here (tests drop their databases afterwards)."""
    with _engines_guard:
        engines = list(_engines.values())
        _engines.clear()
    for engine in engines:
        engine.dispose()
