"""log_metrics: validates on the caller's thread, queues without blocking, uses current_step, int-ms timestamps."""

from __future__ import annotations

import time

import mlflow
import pytest
import torch
from mlflow import MlflowClient

import mlflow_monitor
from mlflow_monitor.metrics import MetricPoint, api, get_pipeline


def test_log_metrics_returns_before_anything_reaches_the_store():
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"x": 1.0}, step=0)
        # nothing was flushed yet: the call only appended to memory
        assert MlflowClient().get_metric_history(run.info.run_id, "x") == []
        assert mlflow_monitor.flush(timeout=30)
        assert len(MlflowClient().get_metric_history(run.info.run_id, "x")) == 1


@pytest.mark.parametrize(
    "metrics, error",
    [
        ({"bad name!": 1.0}, ValueError),
        ({"ok": "high"}, TypeError),
        ({"ok": torch.ones(3)}, ValueError),
        ([("ok", 1.0)], TypeError),
    ],
)
def test_bad_input_raises_clearly_and_logs_nothing(metrics, error):
    with mlflow.start_run() as run:
        with pytest.raises(error) as exc:
            mlflow_monitor.log_metrics(metrics, step=0)
        assert mlflow_monitor.flush(timeout=30)
    assert "ok" in str(exc.value) or "bad name" in str(exc.value) or "mapping" in str(exc.value)
    assert MlflowClient().get_run(run.info.run_id).data.metrics == {}


def test_log_metrics_without_active_run_starts_one():
    assert mlflow.active_run() is None
    mlflow_monitor.log_metrics({"x": 1.0})
    run = mlflow.active_run()
    assert run is not None
    assert mlflow_monitor.flush(timeout=30)
    assert MlflowClient().get_run(run.info.run_id).data.metrics == {"x": 1.0}


def test_step_none_uses_the_current_optimizer_step(monkeypatch):
    monkeypatch.setattr(api, "current_step", 41)
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"x": 1.0})
        mlflow_monitor.log_metrics({"y": 2.0, "z": 3.0})
        assert mlflow_monitor.flush(timeout=30)
    client = MlflowClient()
    assert [m.step for k in ("x", "y", "z") for m in client.get_metric_history(run.info.run_id, k)] == [41, 41, 41]


def test_observers_get_metric_points_with_wall_clock_int_ms_timestamps():
    seen: list = []
    remove = get_pipeline().add_observer(seen.append)
    try:
        before = int(time.time() * 1000)
        with mlflow.start_run() as run:
            mlflow_monitor.log_metrics({"a": 1.0}, step=2)
            mlflow_monitor.log_metrics({"b": torch.tensor(2.0), "c": 3}, step=3)
            assert mlflow_monitor.flush(timeout=30)
        after = int(time.time() * 1000)
    finally:
        remove()
    rid = run.info.run_id
    assert [(p.run_id, p.key, p.value, p.step) for p in seen] == [(rid, "a", 1.0, 2), (rid, "b", 2.0, 3), (rid, "c", 3.0, 3)]
    assert all(type(p) is MetricPoint and type(p.timestamp_ms) is int and before <= p.timestamp_ms <= after for p in seen)
    stored = MlflowClient().get_metric_history(rid, "a")[0]
    assert stored.timestamp == seen[0].timestamp_ms
