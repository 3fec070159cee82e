"""The demo (`make demo`) as a user runs it: no stray run in its store, no health alert on any run
(the serving step's drift alert is a production alert, on purpose)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_leaves_only_its_own_runs_and_no_health_alerts(tmp_path):
    env = {**os.environ, "MLFLOW_MONITOR_HOME": str(tmp_path / ".mlflow_monitor")}
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL",
                "SLACK_CHANNEL", "SLACK_API_URL"):
        env.pop(var, None)
    proc = subprocess.run([sys.executable, str(DEMO)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    # the demo's own runs: training, the gate's two, and the serving step's monitoring run
    assert sorted(r.info.run_name for r in runs) == ["demo-training", "gate-demo-candidate-drifted",
                                                     "gate-demo-train", "prod-demo-gate-classifier-v1"]
    monitoring = next(r for r in runs if r.info.run_name == "prod-demo-gate-classifier-v1")
    assert monitoring.data.tags.get("mlflow_monitor.prod") == "demo-gate-classifier/1"
    alerts = {r.info.run_name: k for r in runs for k in r.data.tags if k.startswith("mlflow_monitor.health.")}
    assert alerts == {}
    assert "health alert" not in proc.stdout.lower()
