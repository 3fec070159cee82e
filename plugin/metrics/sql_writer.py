"""Bulk metric writes into an MLflow SQL tracking store (sqlite, postgresql, mysql).

``SqlAlchemyStore.log_batch`` builds one ORM object per point and costs ~0.15 ms of CPU
per metric here, all of it holding the GIL of the *training* process when the store is
embedded (sqlite in the working folder). This writer produces the same rows in one
transaction, ~30x cheaper (on sqlite: multi-row ``INSERT OR IGNORE`` statements on the
DBAPI cursor, rows in index order; elsewhere SQLAlchemy Core):

- ``metrics``: one row per point, identical points ignored (MLflow's primary key is
  ``(key, timestamp, step, run_uuid, value, is_nan)``, and MLflow also drops duplicates);
- ``latest_metrics``: per key, the point with the greatest ``(step, timestamp, value)``,
  as ``SqlAlchemyStore._update_latest_metrics_if_necessary`` keeps it;
- values sanitised as MLflow does (NaN -> ``is_nan``, +/-inf -> +/-max float);
- only for runs whose lifecycle stage is ``active``, with MLflow's error codes otherwise.

It relies on MLflow's table definitions and store engine (both reached through
:mod:`mlflow_monitor.mlflow_compat`); :func:`make_sql_writer` returns None whenever
anything about them is not as expected, and the caller then uses ``MlflowClient.log_batch``.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any, Callable, Optional, Sequence

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

from mlflow_monitor.mlflow_compat import sql_metric_tables, sql_store_engine, validate_metric_name

__all__ = ["SqlMetricWriter", "make_sql_writer"]

_logger = logging.getLogger(__name__)
_MAX_FLOAT = 1.7976931348623157e308
_DIALECTS = ("sqlite", "postgresql", "mysql")
_COLUMNS = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")
_INT64_MIN = -(2**63)
_SQLITE_ROWS_PER_STATEMENT = (100, 10, 1)  # 402 parameters at most: under any sqlite's limit (999)
_SQLITE_KEYS_PER_UPSERT = 100  # 501 parameters at most


class SqlMetricWriter:
    """Writes metric batches straight into MLflow's ``metrics`` / ``latest_metrics`` tables."""

    def __init__(self, engine: Any, metrics_table: Any, latest_table: Any, runs_table: Any) -> None:
        self._engine = engine
        self._metrics = metrics_table
        self._latest = latest_table
        self._runs = runs_table
        self.dialect: str = engine.dialect.name
        self._insert_ignore = _insert_ignore(engine.dialect.name)
        # sqlite >= 3.24 has upserts (and row values, 3.15); an older one gets the SQLAlchemy path
        self._sqlite = engine.dialect.name == "sqlite" and sqlite3.sqlite_version_info >= (3, 24)
        self._valid_keys: set[str] = set()
        self._sqlite_inserts: dict[int, str] = {}  # rows per statement -> SQL
        self._sqlite_upserts: dict[int, str] = {}  # keys -> latest_metrics upsert SQL
        self._sqlite_run_state = f"SELECT lifecycle_stage FROM {runs_table.name} WHERE run_uuid = ?"

    def write(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Write ``mlflow.entities.Metric`` objects of one run (same rows as ``log_batch``)."""
        self._write_rows(run_id, [(run_id, m.key, float(m.value), int(m.step), int(m.timestamp)) for m in metrics])

    def write_points(self, run_id: str, points: Sequence[Any]) -> None:
        """Write :class:`~mlflow_monitor.metrics.point.MetricPoint` s of one run (float values,
        int steps and timestamps), without building an MLflow entity per point."""
        self._write_rows(run_id, points)

    def _write_rows(self, run_id: str, points: Sequence[Any]) -> None:
        """``points``: ``(run_id, key, value, step, timestamp)`` (a MetricPoint's order).

        One transaction. Rows go in grouped by key, in log order within a key: that is the
        order of the primary key ``(key, timestamp, step, ...)`` and of the ``(run_uuid,
        key, step)`` index, so sqlite finds each row's place next to the previous one
        (measured: ~20% less CPU per row than the log order, where the keys of a step
        interleave).
        """
        import sqlalchemy as sa

        if not points:
            return
        # key -> its rows' values flattened, (value, timestamp, step, is_nan) per row
        buckets: dict[str, list[Any]] = {}
        for _, key, value, step, ts in points:
            if value - value:  # NaN or +/-inf (a finite float gives 0.0)
                if value != value:
                    value, is_nan = 0.0, True
                else:
                    value, is_nan = (_MAX_FLOAT if value > 0 else -_MAX_FLOAT), False
            else:
                is_nan = False
            flat = buckets.get(key)
            if flat is None:
                flat = buckets[key] = []
            flat += (value, ts, step, is_nan)
        for key in buckets.keys() - self._valid_keys:
            validate_metric_name(key)  # MLflow's own rule and error (INVALID_PARAMETER_VALUE)
            self._valid_keys.add(key)
        ordered = sorted(buckets)
        # key -> (step, timestamp, value, is_nan) of its greatest point, as MLflow keeps it
        newest = {}
        for key in ordered:
            flat = buckets[key]
            *_, neg = max(zip(flat[2::4], flat[1::4], flat[0::4], range(0, -len(flat), -4)))
            i = -neg  # of equal (step, timestamp, value), the first logged wins, as in MLflow
            newest[key] = (flat[i + 2], flat[i + 1], flat[i], flat[i + 3])
        if self._sqlite:
            with self._engine.begin() as conn:
                self._write_sqlite(conn, run_id, ordered, buckets, newest)
            return
        runs, latest = self._runs, self._latest
        with self._engine.begin() as conn:
            found = conn.execute(sa.select(runs.c.lifecycle_stage).where(runs.c.run_uuid == run_id)).first()
            _check_active(run_id, found)
            conn.execute(self._insert_ignore(self._metrics), [
                {"key": key, "value": flat[i], "timestamp": flat[i + 1], "step": flat[i + 2],
                 "is_nan": flat[i + 3], "run_uuid": run_id}
                for key in ordered for flat in (buckets[key],) for i in range(0, len(flat), 4)
            ])
            current = {
                r.key: r
                for r in conn.execute(
                    sa.select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value)
                    .where(latest.c.run_uuid == run_id, latest.c.key.in_(ordered))
                    .order_by(latest.c.key)
                    .with_for_update()
                )
            }
            inserts = [_latest_row(run_id, k, newest[k]) for k in ordered if k not in current]
            if inserts:
                conn.execute(self._insert_ignore(latest), inserts)
            for key in ordered:
                old, (step, ts, value, is_nan) = current.get(key), newest[key]
                if old is not None and (step, ts, value) > (old.step, old.timestamp, old.value):
                    conn.execute(
                        latest.update()
                        .where(latest.c.run_uuid == run_id, latest.c.key == key)
                        .values(value=value, step=step, timestamp=ts, is_nan=is_nan)
                    )


    def _write_sqlite(self, conn: Any, run_id: str, ordered: list[str], buckets: dict[str, list[Any]],
                      newest: dict[str, tuple]) -> None:
        """The whole write as a few statements on the DBAPI cursor of ``conn`` (same
        connection and transaction as SQLAlchemy's): the run's state, the rows, then
        ``latest_metrics`` in one upsert.

        Rows go in as ``INSERT OR IGNORE ... VALUES (...), (...), ...`` of up to 100 rows per
        statement. Measured against ``executemany`` of one row per execution: ~45% less CPU
        per row (sqlite opens and seeks its four b-tree cursors, the table's and three
        indexes', once per statement instead of once per row). Statements have 100, 10 or 1
        rows, so a handful of SQL texts is compiled once and then comes from the driver's
        statement cache; the run id and the key are bound once per statement (``?1``, ``?2``).
        The upsert replaces a SELECT and one UPDATE per key (what a 1 s system-metrics flush
        of ~15 keys spent most of its time on).
        """
        cursor = conn.connection.cursor()
        try:
            found = cursor.execute(self._sqlite_run_state, (run_id,)).fetchone()
            _check_active(run_id, found)
            for key in ordered:
                flat = buckets[key]
                i, end = 0, len(flat)
                for rows in _SQLITE_ROWS_PER_STATEMENT:
                    width = 4 * rows
                    sql = self._sqlite_statement(rows)
                    while end - i >= width:
                        params = [run_id, key]
                        params += flat[i : i + width]
                        cursor.execute(sql, params)
                        i += width
            for k in range(0, len(ordered), _SQLITE_KEYS_PER_UPSERT):
                keys = ordered[k : k + _SQLITE_KEYS_PER_UPSERT]
                latest: list[Any] = [run_id]
                for key in keys:
                    step, ts, value, is_nan = newest[key]
                    latest += (key, value, ts, step, is_nan)
                cursor.execute(self._sqlite_latest_upsert(len(keys)), latest)
        finally:
            cursor.close()

    def _sqlite_statement(self, rows: int) -> str:
        sql = self._sqlite_inserts.get(rows)
        if sql is None:  # ?1: the run id, ?2: the key, then (value, timestamp, step, is_nan) per row
            values = ", ".join(f"(?2, ?{3 + 4 * r}, ?{4 + 4 * r}, ?{5 + 4 * r}, ?{6 + 4 * r}, ?1)" for r in range(rows))
            sql = self._sqlite_inserts[rows] = (
                f"INSERT OR IGNORE INTO {self._metrics.name} ({', '.join(_COLUMNS)}) VALUES {values}"
            )
        return sql

    def _sqlite_latest_upsert(self, keys: int) -> str:
        """One ``INSERT ... ON CONFLICT DO UPDATE`` for ``keys`` keys: a key's row is replaced
        only by a greater ``(step, timestamp, value)``, as MLflow's
        ``_update_latest_metrics_if_necessary`` decides (a NULL timestamp counts as smallest)."""
        sql = self._sqlite_upserts.get(keys)
        if sql is None:  # ?1: the run id, then (key, value, timestamp, step, is_nan) per key
            t = self._latest.name
            values = ", ".join(f"(?{2 + 5 * k}, ?{3 + 5 * k}, ?{4 + 5 * k}, ?{5 + 5 * k}, ?{6 + 5 * k}, ?1)"
                               for k in range(keys))
            sql = self._sqlite_upserts[keys] = (
                f"INSERT INTO {t} ({', '.join(_COLUMNS)}) VALUES {values} "
                "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value, "
                "timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan "
                f"WHERE (excluded.step, excluded.timestamp, excluded.value) > "
                f"({t}.step, COALESCE({t}.timestamp, {_INT64_MIN}), {t}.value)"
            )
            if len(self._sqlite_upserts) > 64:  # many different key counts: keep the cache small
                self._sqlite_upserts.clear()
        return sql


def _check_active(run_id: str, found: Any) -> None:
    """MLflow's errors for a missing run and for one that is not active (``found``: its
    ``(lifecycle_stage,)`` row, or None)."""
    if found is None:
        raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
    if found[0] != "active":
        raise MlflowException(
            f"The run {run_id} must be in the 'active' state. Current state is {found[0]}.",
            INVALID_PARAMETER_VALUE,
        )


def _latest_row(run_id: str, key: str, newest: tuple) -> dict[str, Any]:
    step, ts, value, is_nan = newest
    return {"key": key, "value": value, "timestamp": ts, "step": step, "is_nan": is_nan, "run_uuid": run_id}


def make_sql_writer(tracking_uri: str) -> Optional[SqlMetricWriter]:
    """A writer for a SQL tracking URI, or None (other stores, or unexpected MLflow internals)."""
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0]
    if scheme not in _DIALECTS:
        return None
    try:
        engine = sql_store_engine(tracking_uri)
        metrics, latest, runs = sql_metric_tables()
        expected = {"key", "value", "timestamp", "step", "is_nan", "run_uuid"}
        if not (expected <= set(metrics.c.keys()) and expected <= set(latest.c.keys())
                and "lifecycle_stage" in runs.c and engine.dialect.name in _DIALECTS):
            return None
        return SqlMetricWriter(engine, metrics, latest, runs)
    except Exception:
        _logger.debug("mlflow-monitor: SQL fast path unavailable for this store", exc_info=True)
        return None


def _insert_ignore(dialect: str) -> Callable[[Any], Any]:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return lambda table: insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return lambda table: insert(table).on_conflict_do_nothing()
    from sqlalchemy import insert  # mysql

    return lambda table: insert(table).prefix_with("IGNORE")
