"""The metrics pipeline against real stores: sqlite, a real `mlflow server`, outages."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time

import mlflow
import torch
from mlflow import MlflowClient

import mlflow_monitor
from mlflow_monitor.metrics import MetricsPipeline, get_pipeline


def _history(run_id: str, key: str, uri: str | None = None):
    return sorted(MlflowClient(uri).get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))


def test_log_metrics_delivers_every_point_once_in_step_order():
    with mlflow.start_run() as run:
        for i in range(2500):  # > 2 log_batch requests of 1000
            mlflow_monitor.log_metrics({"val/acc": i / 2500, "val/loss": 1.0 - i / 2500}, step=i)
        assert mlflow_monitor.flush(timeout=60)
    hist = _history(run.info.run_id, "val/acc")
    assert [m.step for m in hist] == list(range(2500))
    assert [m.value for m in hist] == [i / 2500 for i in range(2500)]


def test_nan_and_inf_are_logged_as_they_are():
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"a": math.nan, "b": math.inf, "c": -math.inf}, step=3)
        assert mlflow_monitor.flush(timeout=30)
    client = MlflowClient()
    assert math.isnan(client.get_metric_history(run.info.run_id, "a")[0].value)
    assert client.get_metric_history(run.info.run_id, "b")[0].value > 1e308
    assert client.get_metric_history(run.info.run_id, "c")[0].value < -1e308


def test_tensor_values_are_read_off_the_callers_thread():
    seen_threads = []
    remove = get_pipeline().add_observer(lambda *a: seen_threads.append(threading.current_thread().name))
    try:
        with mlflow.start_run() as run:
            mlflow_monitor.log_metrics({"t": torch.tensor(2.5), "u": torch.tensor([4.0])}, step=1)
            assert mlflow_monitor.flush(timeout=30)
    finally:
        remove()
    assert _history(run.info.run_id, "t")[0].value == 2.5
    assert _history(run.info.run_id, "u")[0].value == 4.0
    assert set(seen_threads) == {"mlflow-monitor-flusher"}


def test_points_the_store_rejects_are_isolated_and_kept(tmp_path):
    pipe = get_pipeline()
    with mlflow.start_run() as run:
        rid = run.info.run_id
        pipe.append(rid, "good", 1.0, 0)
        pipe.append(rid, "bad//../name", 2.0, 0)  # bypasses log_metrics' validation
        pipe.append(rid, "good", 3.0, 1)
        assert pipe.flush(timeout=30)
    assert [m.value for m in _history(rid, "good")] == [1.0, 3.0]
    rejected = (tmp_path / "monitor_home" / "rejected.jsonl").read_text().splitlines()
    assert len(rejected) == 1 and json.loads(rejected[0])["point"][1] == "bad//../name"


def test_database_locked_points_are_spooled_then_delivered(tmp_path, tracking_uri):
    db_path = tracking_uri.removeprefix("sqlite:///")
    pipe = MetricsPipeline(flush_interval_s=0.1)
    try:
        with mlflow.start_run() as run:
            rid = run.info.run_id
        lock = sqlite3.connect(db_path, timeout=0)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            for i in range(50):
                pipe.append(rid, "m", float(i), i)
            deadline = time.monotonic() + 60
            while not list((tmp_path / "monitor_home" / "spool").glob("*.jsonl")) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert list((tmp_path / "monitor_home" / "spool").glob("*.jsonl")), "nothing was spooled"
        finally:
            lock.rollback()
            lock.close()
        assert pipe.flush(timeout=60)
    finally:
        pipe.close(5)
    assert [m.value for m in _history(rid, "m")] == [float(i) for i in range(50)]


def test_server_outage_points_spooled_and_replayed_exactly_once_in_order(mlflow_server):
    srv = mlflow_server()
    mlflow.set_tracking_uri(srv.url)
    client = MlflowClient(srv.url)
    with mlflow.start_run() as run:
        rid = run.info.run_id
        for i in range(300):
            mlflow_monitor.log_metrics({"train/loss": 1.0 / (i + 1)}, step=i)
        assert mlflow_monitor.flush(timeout=60)
        srv.stop()
        for i in range(300, 900):
            mlflow_monitor.log_metrics({"train/loss": 1.0 / (i + 1)}, step=i)
            if i % 100 == 0:
                time.sleep(0.05)
        assert not mlflow_monitor.flush(timeout=2)  # store down: not delivered yet, but kept
        srv.start()
        assert mlflow_monitor.flush(timeout=90)
    hist = sorted(client.get_metric_history(rid, "train/loss"), key=lambda m: m.step)
    assert [m.step for m in hist] == list(range(900))
    assert [m.value for m in hist] == [1.0 / (i + 1) for i in range(900)]


def test_flush_after_close_does_not_raise_and_reports_state():
    pipe = MetricsPipeline()
    with mlflow.start_run() as run:
        pipe.append(run.info.run_id, "m", 1.0, 0)
        assert pipe.close(timeout=30)
        assert pipe.flush(timeout=1) is True
    assert [m.value for m in _history(run.info.run_id, "m")] == [1.0]
