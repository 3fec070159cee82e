"""Private PostgreSQL and MariaDB databases for tests (no tests here).

``new_database(kind)`` creates a uniquely named database (``mm_gate_<random>``) on the
local service and returns its SQLAlchemy URI; ``drop_database(uri)`` removes it. When the
service is unreachable the test is skipped -- or fails under ``CI=true``, where the
services are part of the contract.

As pytest fixtures (import them into a test module or conftest):
``postgres_uri``, ``mysql_uri`` and ``sql_uri`` (parametrised over sqlite, postgresql, mysql).
"""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

# The PostgreSQL driver can be chosen: `make test-floor` uses psycopg2, because MLflow 3.3's
# registry store compares its Integer ``version`` column with the string version the REST
# API passes, and psycopg 3 sends that parameter typed (``integer = character varying``
# fails; stock MLflow 3.3 fails the same way). psycopg2 inlines it and PostgreSQL coerces.
SERVERS = {
    "postgresql": os.environ.get("MLFLOW_MONITOR_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    "mysql": "mysql+pymysql://root@127.0.0.1:3306",
}
ADMIN_DB = {"postgresql": "postgres", "mysql": "test"}


def _unavailable(kind: str, exc: Exception) -> None:
    message = f"{kind} at {SERVERS[kind].rsplit('@', 1)[-1]} is not reachable: {type(exc).__name__}: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: the database services are required)")
    pytest.skip(message)


def _admin_engine(kind: str):
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine(f"{SERVERS[kind]}/{ADMIN_DB[kind]}", poolclass=NullPool,
                            isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


def new_database(kind: str) -> str:
    """A fresh empty database of ``kind`` (postgresql | mysql); its URI."""
    import sqlalchemy as sa

    name = f"mm_gate_{uuid.uuid4().hex[:12]}"
    try:
        with _admin_engine(kind).connect() as conn:
            if kind == "mysql":
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            else:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        _unavailable(kind, exc)
    return f"{SERVERS[kind]}/{name}"


def drop_database(uri: str) -> None:
    import sqlalchemy as sa

    from mlflow_monitor.gate.audit_db import dispose_engines

    dispose_engines()
    kind = "mysql" if uri.startswith("mysql") else "postgresql"
    name = uri.rsplit("/", 1)[-1]
    with _admin_engine(kind).connect() as conn:
        if kind == "mysql":
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        else:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def postgres_uri() -> Iterator[str]:
    uri = new_database("postgresql")
    yield uri
    drop_database(uri)


@pytest.fixture
def mysql_uri() -> Iterator[str]:
    uri = new_database("mysql")
    yield uri
    drop_database(uri)


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def sql_uri(request, tmp_path) -> Iterator[str]:
    """An empty registry database of each kind (sqlite: a file in tmp_path)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.db'}"
        from mlflow_monitor.gate.audit_db import dispose_engines

        dispose_engines()
        return
    uri = new_database(request.param)
    yield uri
    drop_database(uri)
