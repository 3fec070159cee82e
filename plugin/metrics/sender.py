"""Deliver metric batches to one tracking store.

HTTP(S) tracking servers get one ``log-batch`` request with *no* client-side retries and
a short timeout (:func:`mlflow_monitor.mlflow_compat.rest_call`): the pipeline has its own
spool and replay, and MLflow's default retry schedule would stall the flusher for minutes
during an outage. SQL stores (sqlite, postgresql, mysql) get a bulk writer that produces
the same rows at a fraction of the ORM's CPU cost (see ``sql_writer``). Every other store
goes through ``MlflowClient.log_batch``. An embedded sqlite store is written by a writer
process (:mod:`~mlflow_monitor.metrics.writer_process`) unless that is turned off
(``MLFLOW_MONITOR_WRITER_PROCESS=0``, ``writer_process=False``). Which failures are worth retrying is decided by
:func:`mlflow_monitor.retry.is_permanent`.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from mlflow.entities import Metric

from mlflow_monitor import mlflow_compat
from mlflow_monitor.metrics.point import MetricPoint

__all__ = ["LOG_BATCH_ENDPOINT", "MAX_METRICS_PER_BATCH", "MAX_SQL_POINTS_PER_WRITE", "MetricSender"]

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit
MAX_SQL_POINTS_PER_WRITE = 20_000  # one SQL-writer transaction (not a request: no size limit but memory)
LOG_BATCH_ENDPOINT = "/api/2.0/mlflow/runs/log-batch"


class MetricSender:
    """Sends ``log_batch`` requests of at most 1000 points to ``tracking_uri``."""

    def __init__(self, tracking_uri: str, timeout_s: float = 10.0, writer_process: Optional[bool] = None) -> None:
        """``writer_process``: embedded sqlite writes in a child process (None: the
        ``MLFLOW_MONITOR_WRITER_PROCESS`` switch, on when unset)."""
        self.tracking_uri = tracking_uri
        self.timeout_s = timeout_s
        self._is_http = tracking_uri.startswith(("http://", "https://"))
        self._client: Any = None
        self._sql_writer: Optional[Any] = None
        if not self._is_http:
            from mlflow_monitor.metrics.sql_writer import make_sql_writer

            self._sql_writer = make_sql_writer(tracking_uri)
        #: The store is a sqlite file written in this process (no network in between).
        self.embedded = self._sql_writer is not None and self._sql_writer.dialect == "sqlite"
        if self.embedded:
            from mlflow_monitor.metrics.writer_process import SqlWriterProcess, writer_process_enabled

            if writer_process_enabled(writer_process):
                self._sql_writer = SqlWriterProcess(tracking_uri, in_process=self._sql_writer,
                                                    timeout_s=max(30.0, 3 * timeout_s))
        #: Points per request: MLflow's log_batch limit, or more in one transaction for the
        #: SQL writer (a commit costs as much as ~200 rows on sqlite).
        self.max_batch = MAX_SQL_POINTS_PER_WRITE if self._sql_writer is not None else MAX_METRICS_PER_BATCH

    def send(self, run_id: str, points: Sequence[MetricPoint]) -> None:
        """Log ``points`` (<= :attr:`max_batch`, all of ``run_id``, float values); raises on failure."""
        if self._sql_writer is not None:
            self._sql_writer.write_points(run_id, points)
            return
        metrics = [Metric(p.key, p.value, p.timestamp_ms, p.step) for p in points]
        if self._is_http:
            mlflow_compat.rest_call(self.tracking_uri, LOG_BATCH_ENDPOINT, "POST", self.timeout_s,
                                    json=mlflow_compat.log_batch_json(run_id, metrics))
        else:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            self._client.log_batch(run_id, metrics=metrics, synchronous=True)

    @property
    def writer(self) -> Any:
        """The SQL writer (a :class:`~.writer_process.SqlWriterProcess` for an embedded store
        written by a child process), or None for HTTP and other stores."""
        return self._sql_writer

    def close(self) -> None:
        """End the writer process, if there is one (bounded wait)."""
        close = getattr(self._sql_writer, "close", None)
        if close is not None:
            close()
