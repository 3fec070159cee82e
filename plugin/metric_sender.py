"""Deliver metric batches to one tracking store, and classify failures.

HTTP(S) tracking servers are called with MLflow's own request helper but with *no*
client-side retries and a short timeout: the pipeline has its own spool and replay,
and MLflow's default retry schedule would stall the flusher for minutes during an
outage. SQL stores (sqlite, postgresql, mysql) get a bulk writer that produces the same
rows at a fraction of the ORM's CPU cost (see ``sql_metric_writer``). Every other store
goes through ``MlflowClient.log_batch``.
"""

from __future__ import annotations

import json
from typing import Sequence

from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

MAX_METRICS_PER_BATCH = 1000  # MLflow's log_batch limit

_PERMANENT_CODES = {
    ErrorCode.Name(INVALID_PARAMETER_VALUE),
    ErrorCode.Name(RESOURCE_DOES_NOT_EXIST),
    ErrorCode.Name(INVALID_STATE),
}


def is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, MlflowException) and exc.error_code in _PERMANENT_CODES


class MetricSender:
    """Sends ``log_batch`` requests of at most 1000 metrics to ``tracking_uri``."""

    def __init__(self, tracking_uri: str, timeout_s: float = 10.0) -> None:
        self.tracking_uri = tracking_uri
        self.timeout_s = timeout_s
        self._is_http = tracking_uri.startswith(("http://", "https://"))
        self._client = None
        self._host_creds = None
        self._sql_writer = None
        if not self._is_http:
            from mlflow_monitor.sql_metric_writer import make_sql_writer

            self._sql_writer = make_sql_writer(tracking_uri)

    def send(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Log ``metrics`` (<= 1000) to ``run_id``; raises on failure."""
        if self._is_http:
            self._send_rest(run_id, metrics)
        elif self._sql_writer is not None:
            self._sql_writer.write(run_id, metrics)
        else:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            self._client.log_batch(run_id, metrics=list(metrics), synchronous=True)

    def _send_rest(self, run_id: str, metrics: Sequence[Metric]) -> None:
        from mlflow.protos.service_pb2 import LogBatch
        from mlflow.utils.proto_json_utils import message_to_json
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        if self._host_creds is None:
            from mlflow.utils.credentials import get_default_host_creds

            self._host_creds = get_default_host_creds(self.tracking_uri)
        body = message_to_json(LogBatch(run_id=run_id, metrics=[m.to_proto() for m in metrics]))
        endpoint = "/api/2.0/mlflow/runs/log-batch"
        response = http_request(
            self._host_creds,
            endpoint,
            "POST",
            json=json.loads(body),
            max_retries=0,
            backoff_factor=0,
            timeout=self.timeout_s,
            raise_on_status=False,
        )
        verify_rest_response(response, endpoint)
