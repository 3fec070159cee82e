"""Demo step 4: serve the champion with ``mlflow-monitor serve`` and watch production.

1. serve ``models:/demo-gate-classifier@champion`` (the gate demo's champion) on
   127.0.0.1 with 5-second windows;
2. send traffic: one window of rows like the reference, then one with a drifted
   segment (every feature scaled x3);
3. stop the server: its closer merges the last windows;
4. print the monitoring run's windows and the drift alert;
5. say where the drift chart is in the UI.

Bounded (about 30 s; every wait has a deadline) and it stops its server on any exit.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL_NAME = "demo-gate-classifier"
WINDOW_S = 5
ROWS_PER_WINDOW = 1500  # above the drift alert's 1000-row minimum


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ping(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 120.0) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow-monitor serve exited: {log.read_text()[-1500:]}")
        try:
            if requests.get(f"{url}/ping", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"mlflow-monitor serve did not answer in {timeout_s:.0f} s")


def _send(url: str, frame, rows_per_request: int = 300) -> int:
    import requests

    sent = 0
    for start in range(0, len(frame), rows_per_request):
        part = frame.iloc[start:start + rows_per_request]
        body = {"dataframe_split": {"columns": list(part.columns), "data": part.values.tolist()}}
        r = requests.post(f"{url}/invocations", json=body, timeout=30)
        r.raise_for_status()
        sent += len(part)
    return sent


def _next_window(now: float) -> float:
    return (int(now) // WINDOW_S + 1) * WINDOW_S


def run_serving_demo(tracking_uri: str) -> None:
    import mlflow
    import numpy as np

    from mlflow_monitor.production.alerts import window_alerts
    from mlflow_monitor.reference import load_reference
    from mlflow_monitor.windows import find_monitoring_run, list_windows

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    reference = load_reference(champion.run_id, client)
    features = [c for c in reference.frame.columns if c not in {reference.target, reference.prediction}]
    rng = np.random.default_rng(0)
    healthy = reference.frame[features].sample(ROWS_PER_WINDOW, replace=True, random_state=1).reset_index(drop=True)
    drifted = reference.frame[features].sample(ROWS_PER_WINDOW, replace=True, random_state=2).reset_index(drop=True)
    drifted = drifted * 3.0 + rng.normal(scale=0.01, size=drifted.shape)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="demo_serve_")) / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri}
    env.pop("MLFLOW_REGISTRY_URI", None)
    cmd = [sys.executable, "-m", "mlflow_monitor.cli", "serve", f"models:/{MODEL_NAME}@champion",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--window", f"{WINDOW_S}s"]
    print(f"[serving demo] $ mlflow-monitor serve models:/{MODEL_NAME}@champion --port {port} --window {WINDOW_S}s")
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_ping(url, proc, log)
        time.sleep(max(0.0, _next_window(time.time()) - time.time()))
        print(f"[serving demo] window 1: {_send(url, healthy)} rows like the reference")
        time.sleep(max(0.0, _next_window(time.time()) - time.time()))
        print(f"[serving demo] window 2: {_send(url, drifted)} rows with a drifted segment (features x3)")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # a normal stop: every open window is closed and merged
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    run_id = find_monitoring_run(client, MODEL_NAME, str(champion.version))
    if run_id is None:
        print(f"[serving demo] no monitoring run was created; server log:\n{log.read_text()[-1500:]}")
        return
    run = client.get_run(run_id)
    now = time.time()
    windows = sorted(list_windows(client, run_id, since=now - 3600, until=now + 1))
    drift = {m.step: m.value for m in client.get_metric_history(run_id, "prod/drift_share")}
    rows = {m.step: m.value for m in client.get_metric_history(run_id, "prod/rows")}
    print(f"[serving demo] monitoring run {run_id} ('{run.info.run_name}', tag mlflow_monitor.prod="
          f"{run.data.tags.get('mlflow_monitor.prod')}):")
    for w in windows:
        print(f"    {w.window_id}: {rows.get(w.index, 0):.0f} rows, drift share {drift.get(w.index, float('nan')):.2f}")
        for alert in window_alerts(client, run_id, w):
            print(f"    ALERT [{alert['alert']}] {alert['message']}")
            for line in alert.get("details", [])[:5]:
                print(f"        {line}")
            if alert["alert"] == "drift":
                print(f"        Evidently report: run artifacts > {w.folder('mlflow_monitor/prod/alerts')}/drift_report.html")
    print(f"[serving demo] drift chart: #/experiments/{run.info.experiment_id}/runs/{run_id} -> Model metrics -> "
          "prod/drift_share (and prod/<column>/drift_score, prod/latency_p99_ms, prod/requests)")
    print(f"[serving demo] or: mlflow-monitor prod status {MODEL_NAME}")
