"""End to end: SystemSampler -> the real metrics pipeline -> a sqlite MLflow run."""

from __future__ import annotations

import time

from mlflow import MlflowClient
from mlflow_monitor.metrics import get_pipeline
from mlflow_monitor.system.sampler import SystemSampler


def test_sampled_system_metrics_land_in_the_run_under_mlflow_names():
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("sys")).info.run_id

    sampler = SystemSampler(run_id, interval_s=0.05, gpu=False)  # sink defaults to get_pipeline()
    sampler.start()
    deadline = time.monotonic() + 10
    while sampler.peaks.get("process_rss_megabytes") is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.15)
    sampler.stop()
    assert get_pipeline().flush(timeout=30)

    metrics = client.get_run(run_id).data.metrics
    for name in (
        "cpu_utilization_percentage",
        "system_memory_usage_megabytes",
        "disk_usage_percentage",
        "network_receive_megabytes",
        "process_rss_megabytes",
        "process_children",
    ):
        assert f"system/{name}" in metrics, name
    history = client.get_metric_history(run_id, "system/cpu_utilization_percentage")
    steps = sorted(m.step for m in history)
    assert len(steps) >= 2 and steps == list(range(len(steps)))
    peak_rss = max(m.value for m in client.get_metric_history(run_id, "system/process_rss_megabytes"))
    assert sampler.peaks["process_rss_megabytes"] == peak_rss
