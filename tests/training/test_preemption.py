"""SIGTERM to a training process (preemption, ``kill``): the monitored run ends KILLED with
an end time and its summary, and the handler that was there before still runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import pytest

from helpers.training import history

HERE = Path(__file__).parent

_SCRIPT = """
import json, signal, sys, time
import mlflow, torch
mlflow.set_tracking_uri({uri!r})
import mlflow_monitor
from mlflow_monitor import events

def on_summary(summary):  # runs on the publisher's thread, before the process goes
    with open({summary_file!r}, "w") as f:
        json.dump({{"run_id": summary.run_id, "status": summary.status, "error": summary.error,
                   "final": summary.final_metrics}}, f)

events.subscribe(on_summary, events.RunSummary)
if {user_handler!r}:
    def users_handler(signum, frame):  # installed before autolog sees training
        open({marker!r}, "w").write("ran")
        sys.exit(143)
    signal.signal(signal.SIGTERM, users_handler)
mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True, health=False)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
ctx = mlflow.start_run() if {user_run!r} else None
if ctx is not None:
    ctx.__enter__()
for step in range(1, 100000):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad(); loss.backward(); opt.step()
    if step == 5:
        print("RUN", mlflow.active_run().info.run_id, flush=True)
    time.sleep(0.005)
"""


def _run_and_terminate(tmp_path, tracking_uri, user_handler: bool, user_run: bool):
    summary_file, marker = tmp_path / "summary.json", tmp_path / "handler_ran"
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(
        uri=tracking_uri, summary_file=str(summary_file), marker=str(marker),
        user_handler=user_handler, user_run=user_run)))
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env=env)
    try:
        line = proc.stdout.readline()  # blocks until step 5 (or the child dies)
        assert line.startswith("RUN "), proc.stderr.read()[-3000:]
        run_id = line.split()[1]
        time.sleep(0.2)  # a few more steps
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc, run_id, summary_file, marker


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_sigterm_ends_the_run_killed_with_end_time_and_summary_and_the_users_handler_still_runs(
        tmp_path, tracking_uri):
    proc, run_id, summary_file, marker = _run_and_terminate(tmp_path, tracking_uri, user_handler=True,
                                                             user_run=True)
    assert proc.returncode == 143, proc.stderr.read()[-3000:]  # the user's handler decided the exit
    assert marker.read_text() == "ran"
    info = mlflow.MlflowClient().get_run(run_id).info
    assert info.status == "KILLED"
    assert info.end_time is not None
    summary = json.loads(summary_file.read_text())
    assert summary["run_id"] == run_id and summary["status"] == "KILLED"
    assert "SIGTERM" in summary["error"]
    assert "train/loss" in summary["final"]
    assert len(history(run_id, "train/loss")) >= 5  # flushed before the end


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_sigterm_without_a_handler_ends_the_owned_run_killed_then_the_process_dies_of_the_signal(
        tmp_path, tracking_uri):
    proc, run_id, summary_file, _ = _run_and_terminate(tmp_path, tracking_uri, user_handler=False,
                                                        user_run=False)
    assert proc.returncode == -signal.SIGTERM, proc.stderr.read()[-3000:]  # as without autolog
    info = mlflow.MlflowClient().get_run(run_id).info
    assert info.status == "KILLED"
    assert info.end_time is not None
    assert json.loads(summary_file.read_text())["status"] == "KILLED"
    assert len(history(run_id, "train/loss")) >= 5


def test_the_sigterm_handler_comes_with_the_first_run_and_disable_restores_the_previous_one():
    import torch

    import mlflow_monitor
    from helpers.training import quiet_autolog

    def users_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, users_handler)
    try:
        scale_before = torch.amp.GradScaler.scale
        quiet_autolog()
        assert signal.getsignal(signal.SIGTERM) is users_handler  # nothing until training starts
        model = torch.nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        with mlflow.start_run():
            model(torch.ones(1, 2)).sum().backward()
            opt.step()
            assert signal.getsignal(signal.SIGTERM) is not users_handler
        assert torch.amp.GradScaler.scale is not scale_before
        mlflow_monitor.autolog(disable=True)
        assert signal.getsignal(signal.SIGTERM) is users_handler
        assert torch.amp.GradScaler.scale is scale_before
    finally:
        signal.signal(signal.SIGTERM, previous)
