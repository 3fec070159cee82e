"""The health monitor on the real metrics pipeline: alerts on the bus and as run tags."""

from __future__ import annotations

import math

import mlflow
from mlflow.tracking import MlflowClient

from mlflow_monitor import events, health
from mlflow_monitor.events import HealthAlert
from mlflow_monitor.health import NanLoss, Plateau
from mlflow_monitor.metrics import get_pipeline


def _collect_alerts():
    alerts: list[HealthAlert] = []
    unsubscribe = events.subscribe(alerts.append, HealthAlert)
    return alerts, unsubscribe


def test_nan_loss_through_the_pipeline_publishes_one_alert_and_tags_the_run(mlflow_db):
    alerts, unsubscribe = _collect_alerts()
    monitor = health.enable()
    try:
        with mlflow.start_run() as run:
            run_id = run.info.run_id
            pipeline = get_pipeline()
            for step in range(50):
                pipeline.append(run_id, "train/loss", 1.0 / (step + 1) if step < 30 else math.nan, step)
            assert pipeline.flush(10)
        assert monitor.tags.flush(10)
    finally:
        unsubscribe()
    nan_alerts = [a for a in alerts if a.rule == "nan_loss"]
    assert len(nan_alerts) == 1  # edge-triggered: NaN on 20 steps is one episode
    assert nan_alerts[0].run_id == run_id and nan_alerts[0].step == 30 and nan_alerts[0].severity == "critical"
    tags = MlflowClient().get_run(run_id).data.tags
    assert tags["mlflow_monitor.health.nan_loss"] == "train/loss is nan at step 30"


def test_tensor_values_reach_rules_as_floats_off_the_training_thread(mlflow_db):
    import threading

    import torch

    seen_threads = set()

    class Spy(NanLoss):
        def observe(self, key, value, step):
            assert isinstance(value, float)
            seen_threads.add(threading.current_thread().name)
            return super().observe(key, value, step)

    alerts, unsubscribe = _collect_alerts()
    monitor = health.enable(rules=[Spy()])
    try:
        with mlflow.start_run() as run:
            get_pipeline().append(run.info.run_id, "train/loss", torch.tensor(float("inf")), 0)
            assert get_pipeline().flush(10)
        monitor.tags.flush(10)
    finally:
        unsubscribe()
    assert [a.value for a in alerts] == [math.inf]
    assert threading.current_thread().name not in seen_threads and seen_threads


def test_rules_keep_separate_state_per_run(mlflow_db):
    alerts, unsubscribe = _collect_alerts()
    monitor = health.HealthMonitor([Plateau(patience=5, min_delta=0.0)], tags=health.monitor.RunTagWriter())
    try:
        for step in range(7):
            monitor.observe("run-a", "train/loss", 1.0, step)
            monitor.observe("run-b", "train/loss", 1.0 - step, step)  # improving
    finally:
        unsubscribe()
        monitor.close(1)
    assert [(a.run_id, a.rule) for a in alerts] == [("run-a", "plateau")]


def test_enable_is_idempotent_and_disable_detaches(mlflow_db):
    alerts, unsubscribe = _collect_alerts()
    try:
        first = health.enable()
        assert health.enable() is first
        health.disable()
        with mlflow.start_run() as run:
            get_pipeline().append(run.info.run_id, "train/loss", math.nan, 0)
            assert get_pipeline().flush(10)
    finally:
        unsubscribe()
    assert alerts == []


def test_a_failing_tag_write_never_reaches_the_pipeline(mlflow_db, monitor_logs):
    alerts, unsubscribe = _collect_alerts()
    monitor = health.enable()
    try:
        get_pipeline().append("no-such-run-id", "train/loss", math.nan, 0)  # the tag write will fail
        get_pipeline().flush(5)
        assert monitor.tags.flush(10)
    finally:
        unsubscribe()
    assert [a.rule for a in alerts] == ["nan_loss"]
    assert "could not tag run no-such-run-id" in monitor_logs.text
