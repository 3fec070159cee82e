"""Bulk metric writes into an MLflow SQL tracking store (sqlite, postgresql, mysql).

``SqlAlchemyStore.log_batch`` builds one ORM object per point and costs ~0.15 ms of CPU
per metric here, all of it holding the GIL of the *training* process when the store is
embedded (sqlite in the working folder). This writer produces the same rows with
SQLAlchemy Core in one transaction, ~20x cheaper:

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
import math
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


class SqlMetricWriter:
    """Writes metric batches straight into MLflow's ``metrics`` / ``latest_metrics`` tables."""

    def __init__(self, engine: Any, metrics_table: Any, latest_table: Any, runs_table: Any) -> None:
        self._engine = engine
        self._metrics = metrics_table
        self._latest = latest_table
        self._runs = runs_table
        self._insert_ignore = _insert_ignore(engine.dialect.name)
        self._sqlite = engine.dialect.name == "sqlite"
        self._valid_keys: set[str] = set()
        self._sqlite_insert = (
            f"INSERT OR IGNORE INTO {metrics_table.name} ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in _COLUMNS)})"
        )

    def write(self, run_id: str, metrics: Sequence[Metric]) -> None:
        import sqlalchemy as sa

        rows = []
        newest: dict[str, dict] = {}
        for key in {m.key for m in metrics} - self._valid_keys:
            validate_metric_name(key)  # MLflow's own rule and error (INVALID_PARAMETER_VALUE)
            self._valid_keys.add(key)
        for m in metrics:
            is_nan, value = _sanitize(float(m.value))
            row = {"key": m.key, "value": value, "timestamp": int(m.timestamp), "step": int(m.step),
                   "is_nan": is_nan, "run_uuid": run_id}
            rows.append(row)
            cur = newest.get(m.key)
            if cur is None or (row["step"], row["timestamp"], value) > (cur["step"], cur["timestamp"], cur["value"]):
                newest[m.key] = row
        if not rows:
            return
        runs, latest = self._runs, self._latest
        with self._engine.begin() as conn:
            found = conn.execute(sa.select(runs.c.lifecycle_stage).where(runs.c.run_uuid == run_id)).first()
            if found is None:
                raise MlflowException(f"Run with id={run_id} not found", RESOURCE_DOES_NOT_EXIST)
            if found[0] != "active":
                raise MlflowException(
                    f"The run {run_id} must be in the 'active' state. Current state is {found[0]}.",
                    INVALID_PARAMETER_VALUE,
                )
            if self._sqlite:  # plain DBAPI executemany: no per-row SQLAlchemy processing
                conn.exec_driver_sql(self._sqlite_insert, [tuple(r[c] for c in _COLUMNS) for r in rows])
            else:
                conn.execute(self._insert_ignore(self._metrics), rows)
            keys = sorted(newest)
            current = {
                r.key: r
                for r in conn.execute(
                    sa.select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value)
                    .where(latest.c.run_uuid == run_id, latest.c.key.in_(keys))
                    .order_by(latest.c.key)
                    .with_for_update()
                )
            }
            inserts = [newest[k] for k in keys if k not in current]
            if inserts:
                conn.execute(self._insert_ignore(latest), inserts)
            for key in keys:
                old, new = current.get(key), newest[key]
                if old is not None and (new["step"], new["timestamp"], new["value"]) > (old.step, old.timestamp, old.value):
                    conn.execute(
                        latest.update()
                        .where(latest.c.run_uuid == run_id, latest.c.key == key)
                        .values(value=new["value"], step=new["step"], timestamp=new["timestamp"], is_nan=new["is_nan"])
                    )


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


def _sanitize(value: float) -> tuple[bool, float]:
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, _MAX_FLOAT if value > 0 else -_MAX_FLOAT
    return False, value


def _insert_ignore(dialect: str) -> Callable[[Any], Any]:
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return lambda table: insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return lambda table: insert(table).on_conflict_do_nothing()
    from sqlalchemy import insert  # mysql

    return lambda table: insert(table).prefix_with("IGNORE")
