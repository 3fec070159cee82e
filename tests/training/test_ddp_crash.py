"""torchrun, 2 gloo ranks, rank 1 raises: rank 0's run never stays RUNNING.

Half the tries have rank 0 inside an all-reduce when rank 1 dies (it raises: FAILED),
half have it busy elsewhere (torchrun's SIGTERM reaches it first: KILLED)."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

WORKER = Path(__file__).parent / "ddp_crash_worker.py"
TRIES = 10


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_when_a_ddp_rank_dies_the_run_ends_failed_or_killed_with_an_end_time_every_time(tmp_path, tracking_uri):
    statuses = collections.Counter()
    for i in range(TRIES):
        mode = "busy" if i % 2 else "collective"
        run_file = tmp_path / f"run_{i}.txt"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
             str(WORKER), tracking_uri, str(run_file), mode],
            capture_output=True, text=True, timeout=130, cwd=tmp_path, env=env,
        )
        assert proc.returncode != 0  # the job failed, as it should
        assert run_file.exists(), proc.stderr[-3000:]
        info = mlflow.MlflowClient().get_run(run_file.read_text()).info
        statuses[mode, info.status] += 1
        expected = "KILLED" if mode == "busy" else "FAILED"
        assert info.status == expected, (i, mode, info.status, proc.stderr[-3000:])
        assert info.end_time is not None
    print("statuses over", TRIES, "tries:", dict(statuses))
