"""stop_mlflow_system_metrics: MLflow's own system-metrics thread never overlaps ours."""

from __future__ import annotations

import mlflow
from mlflow.tracking import fluent
from mlflow_monitor.system.mlflow_system_metrics import stop_mlflow_system_metrics


def test_stops_only_the_monitor_mlflow_started_for_that_run():
    with mlflow.start_run(log_system_metrics=True) as run:
        run_id = run.info.run_id
        mlflow_monitor = fluent.run_id_to_system_metrics_monitor[run_id]
        thread = mlflow_monitor._process
        assert thread is not None and thread.is_alive()

        assert stop_mlflow_system_metrics("another-run") is False
        assert thread.is_alive()

        assert stop_mlflow_system_metrics(run_id) is True
        assert run_id not in fluent.run_id_to_system_metrics_monitor
        assert not thread.is_alive()
        assert stop_mlflow_system_metrics(run_id) is False  # idempotent
    assert mlflow.get_run(run_id).info.status == "FINISHED"  # end_run still works


def test_returns_false_when_mlflow_runs_no_monitor():
    assert fluent.run_id_to_system_metrics_monitor == {}
    assert stop_mlflow_system_metrics("0123456789abcdef") is False
