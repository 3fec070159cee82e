"""Health run tags: the run's own store, bounded calls, retries during an outage, dead letters; LRU rule state."""

from __future__ import annotations

import json
import math

import mlflow
from mlflow.tracking import MlflowClient
from helpers.servers import free_port

from mlflow_monitor import health, paths
from mlflow_monitor.health.monitor import MAX_RUNS
from mlflow_monitor.health.run_tags import RunTagWriter
from mlflow_monitor.metrics import get_pipeline

TAG = "mlflow_monitor.health.nan_loss"


def _down_uri() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_tags_go_to_the_store_the_run_is_bound_to(mlflow_db):
    bound = mlflow.get_tracking_uri()
    run_id = MlflowClient().create_run("0").info.run_id
    get_pipeline().bind_run(run_id, bound)
    mlflow.set_tracking_uri(_down_uri())  # the current URI changed after the run was bound
    writer = RunTagWriter()
    try:
        writer.tag(run_id, TAG, "train/loss is nan at step 3")
        assert writer.flush(20)
    finally:
        writer.close(1)
    assert MlflowClient(tracking_uri=bound).get_run(run_id).data.tags[TAG] == "train/loss is nan at step 3"


def test_tags_during_an_outage_are_retried_on_the_next_write(mlflow_db):
    store_uri = mlflow.get_tracking_uri()
    run_id = MlflowClient().create_run("0").info.run_id
    get_pipeline().bind_run(run_id, _down_uri())
    writer = RunTagWriter()
    try:
        writer.tag(run_id, TAG, "first")
        assert not writer.flush(20)  # bounded (no minutes of MLflow retries); kept for later
        assert writer.pending == [(run_id, TAG, "first")]
        get_pipeline().bind_run(run_id, store_uri)  # the run's store is reachable again
        writer.tag(run_id, "mlflow_monitor.health.plateau", "second")
        assert writer.flush(20)
    finally:
        writer.close(1)
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags[TAG] == "first" and tags["mlflow_monitor.health.plateau"] == "second"


def test_tags_still_unwritten_at_close_go_to_the_dead_letter_dir(mlflow_db, monitor_logs):
    run_id = MlflowClient().create_run("0").info.run_id
    get_pipeline().bind_run(run_id, _down_uri())
    writer = RunTagWriter()
    writer.tag(run_id, TAG, "train/loss is nan at step 9")
    writer.close(10)
    path = paths.dead_letter_dir() / "health_tags.jsonl"
    (entry,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert (entry["run_id"], entry["key"], entry["value"]) == (run_id, TAG, "train/loss is nan at step 9")
    assert str(path) in monitor_logs.text


def test_rule_state_of_a_run_in_use_is_not_evicted_by_newer_runs():
    alerts = []
    monitor = health.HealthMonitor([health.NanLoss()], publish=alerts.append)
    try:
        monitor.observe("hot", "train/loss", math.nan, 0)  # one NaN episode starts
        for i in range(MAX_RUNS + 5):
            monitor.observe(f"other-{i}", "train/loss", 1.0, 0)
            monitor.observe("hot", "train/loss", math.nan, i + 1)  # same episode: no new alert
    finally:
        monitor.close(1)
    assert [a.run_id for a in alerts] == ["hot"]
