"""log-batch requests: each MetricPoint field lands in its Metric field; one request, no client retries."""

from __future__ import annotations

import math

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_monitor.metrics import MetricPoint
from mlflow_monitor.metrics.sender import LOG_BATCH_ENDPOINT, MetricSender


def test_a_rest_batch_carries_key_value_timestamp_and_step_in_their_places(scripted_server):
    sender = MetricSender(scripted_server.url, timeout_s=5.0)
    sender.send("run1", [MetricPoint("run1", "loss", 0.5, 7, 1_700_000_000_123),
                         MetricPoint("run1", "odd", math.nan, 8, 1_700_000_000_456)])
    (req,) = scripted_server.requests
    assert req["method"] == "POST" and req["path"] == LOG_BATCH_ENDPOINT
    body = req["json"]
    assert body["run_id"] == "run1"
    first, second = body["metrics"]
    assert (first["key"], first["value"], int(first["timestamp"]), int(first["step"])) == (
        "loss", 0.5, 1_700_000_000_123, 7)
    assert second["value"] == "NaN"  # MLflow's proto-JSON spelling, which its server parses


def test_a_failing_server_is_asked_once_not_on_mlflows_retry_schedule(scripted_server):
    for _ in range(5):
        scripted_server.answer(503, "Service Unavailable")
    sender = MetricSender(scripted_server.url, timeout_s=5.0)
    with pytest.raises(MlflowException):
        sender.send("run1", [MetricPoint("run1", "loss", 0.5, 1, 1000)])
    assert len(scripted_server.requests) == 1


def test_a_sql_store_gets_the_same_history_as_mlflow_would_write(tracking_uri):
    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    MetricSender(tracking_uri).send(run_id, [MetricPoint(run_id, "loss", 0.25, 3, 12345)])
    (m,) = client.get_metric_history(run_id, "loss")
    assert (m.value, m.step, m.timestamp) == (0.25, 3, 12345)
