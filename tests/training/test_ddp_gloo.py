"""DDP with 2 gloo ranks on CPU: one run, training metrics once (rank 0), system stats per node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from helpers.servers import free_port
from helpers.training import history, only_run_id

WORKER = Path(__file__).parent / "ddp_worker.py"


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_two_ranks_log_into_one_run_training_once_and_system_stats_per_node(tmp_path, tracking_uri):
    proc = subprocess.run(
        [sys.executable, str(WORKER), tracking_uri, str(free_port()), "12", "--two-nodes"],
        capture_output=True, text=True, timeout=360, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_id = only_run_id()  # not one run per rank
    assert f"RUN {run_id}" in proc.stdout
    assert [s for s, _ in history(run_id, "train/loss")] == list(range(1, 13))  # once, by rank 0
    keys = set(mlflow.MlflowClient().get_run(run_id).data.metrics)
    assert "system/node0/cpu_utilization_percentage" in keys
    assert "system/node1/cpu_utilization_percentage" in keys
    assert not any(k.startswith("system/cpu") for k in keys)  # no un-noded system stats under DDP
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FINISHED"
