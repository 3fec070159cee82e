"""Production alerts: drift, performance, latency and error spikes, through the event bus
and the real Slack notifier into the loopback Slack stub; once per model, alert and
window; and none on healthy traffic (false alarms)."""

from __future__ import annotations

import math
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers.production import reference_frame, register_version
from helpers.slack_stub import FAST_SETTINGS, SlackStub

import mlflow_monitor
from mlflow_monitor.events import ProductionAlert, subscribe
from mlflow_monitor.production import Capture
from mlflow_monitor.production.alerts import check_window
from mlflow_monitor.production.labels import log_labels
from mlflow_monitor.windows import find_monitoring_run, read_window_rows
from mlflow_monitor.windows.stored import WINDOWS, list_windows, read_json_artifact

WINDOW = 60


@pytest.fixture
def alerts():
    got: list[ProductionAlert] = []
    unsubscribe = subscribe(got.append, ProductionAlert)
    yield got
    unsubscribe()


@pytest.fixture
def slack(monkeypatch):
    from mlflow_monitor.integrations.slack import lifecycle

    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_UI_URL", "http://mlflow.example:5000")
    with SlackStub() as stub:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", stub.webhook_url)
        notifier = lifecycle.enable({**FAST_SETTINGS, "min_interval_s": 0})
        yield stub, notifier
        lifecycle.disable(timeout=2.0)


def _version(name: str, accuracy: float = 0.9) -> tuple[str, str]:
    name, version, run_id = register_version(name)
    mlflow.MlflowClient().log_metric(run_id, "accuracy", accuracy)
    return name, version


def _past_window(minutes_ago: int) -> float:
    return (math.floor(time.time() / WINDOW) - minutes_ago) * WINDOW


def _log(name: str, version: str, frame: pd.DataFrame, start: float, prefix: str) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(len(frame))]
    preds = pd.DataFrame({"prediction": (frame["x"] > 0).astype(int)})
    mlflow_monitor.log_predictions(frame, preds, model_uri=f"models:/{name}/{version}", prediction_ids=ids,
                                   timestamps=start + 1.0, window="1m")
    return ids


def test_drifted_traffic_alerts_once_in_slack_with_a_link_to_the_monitoring_run(slack, alerts):
    stub, notifier = slack
    name, version = _version("drifting")
    drifted = reference_frame(1200, seed=5).assign(x=lambda f: f["x"] + 3.0, y=lambda f: f["y"] * 3.0)
    _log(name, version, drifted, _past_window(5), "d")
    assert notifier.flush(10)
    assert [(a.alert, a.model_name, a.version) for a in alerts] == [("drift", name, version)]
    msgs = stub.wait_for_messages(1)
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    run = client.get_run(run_id)
    link = f"http://mlflow.example:5000/#/experiments/{run.info.experiment_id}/runs/{run_id}"
    assert len(msgs) == 1 and "Production drift" in msgs[0]["text"] and link in str(msgs[0])
    assert sorted(d.split(":")[0] for d in alerts[0].details) == ["x", "y"]
    window = list_windows(client, run_id, since=time.time() - 3600, until=time.time())[0]
    html = client.download_artifacts(run_id, f"{window.folder('mlflow_monitor/prod/alerts')}/drift_report.html")
    text = open(html, encoding="utf-8").read()  # the alerting window's Evidently report, with our banner
    assert 'id="mlflow-monitor-evidence"' in text and "production traffic captured by the monitor" in text
    # the same window merged again (a late partial, a second closer): no second alert
    window = list_windows(client, run_id, since=time.time() - 3600, until=time.time())[0]
    summary = read_json_artifact(client, run_id, f"{window.folder(WINDOWS)}/summary.json")
    assert check_window(client, run_id, summary) == []
    assert notifier.flush(10) and len(stub.messages) == 1 and len(alerts) == 1


def test_performance_drop_against_the_versions_own_evaluation(alerts):
    name, version = _version("worse", accuracy=0.95)
    ids = _log(name, version, reference_frame(100, seed=2), _past_window(3), "w")
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    window = list_windows(client, run_id, since=time.time() - 3600, until=time.time())[0]
    rows = read_window_rows(client, run_id, window).set_index("__prediction_id")
    pred = rows.loc[ids, "__prediction__/prediction"].to_numpy()
    wrong = {i: int(1 - p) if k % 2 else int(p) for k, (i, p) in enumerate(zip(ids, pred))}  # accuracy 0.5
    log_labels(f"models:/{name}/{version}", wrong)
    perf = [a for a in alerts if a.alert == "performance"]
    assert len(perf) == 1 and perf[0].metric == "prod/accuracy" and perf[0].value == pytest.approx(0.5)
    assert perf[0].threshold == pytest.approx(0.95 * 0.9)
    log_labels(f"models:/{name}/{version}", {ids[0]: wrong[ids[0]]})  # a late label re-scores: still once
    assert len([a for a in alerts if a.alert == "performance"]) == 1


def _serve(cap: Capture, clock, windows: int, *, slow_from: int = 99, errors_in: int = 99) -> None:
    rng = np.random.default_rng(0)
    base = clock.now
    for w in range(windows):
        for r in range(40):
            clock.now = base + w + r * 0.02
            if w == errors_in and r % 3 == 0:
                cap.record_error(500, 1.0)
                continue
            latency = (40.0 if w >= slow_from else 2.0) + rng.uniform(0, 0.5)
            cap.record(reference_frame(1, seed=int(rng.integers(1e9))), [1], latency_ms=latency)
        clock.now = base + w + 1.0 + 0.6  # the window is due
        cap.flush(30)


def test_latency_regression_and_error_spike(tmp_path, clock, alerts):
    name, version = _version("slow")
    cap = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, grace_s=0.0)
    try:
        _serve(cap, clock, 9, slow_from=7, errors_in=6)
        cap.flush(30, close_open=True)
    finally:
        cap.close(10)
    kinds = sorted((a.alert, a.window_id) for a in alerts)
    assert [k for k, _ in kinds] == ["errors", "latency", "latency"]
    assert alerts[0].run_id == find_monitoring_run(mlflow.MlflowClient(), name, version)


def test_healthy_traffic_raises_no_alert(tmp_path, clock, alerts):
    name, version = _version("healthy", accuracy=0.5)
    cap = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, grace_s=0.0)
    try:
        _serve(cap, clock, 9)
        cap.flush(30, close_open=True)
    finally:
        cap.close(10)
    for k in range(3):  # healthy batches: reference-like rows, labels as good as the evaluation
        ids = _log(name, version, reference_frame(1500, seed=10 + k), _past_window(4 + k), f"h{k}")
        labels = {i: int(i.endswith(("0", "2", "4", "6", "8"))) for i in ids}  # about half right
        log_labels(f"models:/{name}/{version}", labels)
    assert alerts == []
