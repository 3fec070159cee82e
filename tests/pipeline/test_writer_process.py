"""The writer process: embedded sqlite writes from a child process, under the spool's no-loss contract.

Real child processes, a real sqlite store, real signals; nothing mocked.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import mlflow
import pytest
from mlflow import MlflowClient

import mlflow_monitor
from mlflow_monitor.metrics import get_pipeline
from mlflow_monitor.metrics.sql_writer import SqlMetricWriter
from mlflow_monitor.metrics.writer_process import ENV_WRITER_PROCESS, SqlWriterProcess, writer_process_enabled

pytestmark = pytest.mark.skipif(os.name == "nt", reason="the writer process is not used on Windows")


def _writer(uri: str):
    dest = get_pipeline()._destinations[uri]
    return dest.sender.writer


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _history(run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in MlflowClient().get_metric_history(run_id, key))


def test_embedded_sqlite_points_go_through_a_writer_process_and_it_ends_with_the_pipeline(tracking_uri):
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"loss": 0.5, "lr": 0.1}, step=1)
        assert mlflow_monitor.flush(timeout=60)
        writer = _writer(tracking_uri)
        assert isinstance(writer, SqlWriterProcess) and not writer.in_process
        pid = writer.pid
        assert pid and pid != os.getpid() and _alive(pid)
    assert _history(run.info.run_id, "loss") == [(1, 0.5)]
    get_pipeline().close()
    assert _wait_gone(pid, 5.0), "the writer process outlived the pipeline's close()"


def test_sigkilled_writer_process_loses_no_point_stores_none_twice_and_the_run_goes_on(tracking_uri):
    steps = 3000
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"warm": 0.0}, step=0)
        assert mlflow_monitor.flush(timeout=60)
        writer = _writer(tracking_uri)
        killed: list[int] = []
        stop = threading.Event()

        def killer() -> None:  # SIGKILL the child twice while points are flowing
            while len(killed) < 2 and not stop.is_set():
                pid = writer.pid
                if pid and pid not in killed and _alive(pid):
                    time.sleep(0.15)
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                time.sleep(0.05)

        t = threading.Thread(target=killer)
        t.start()
        for i in range(steps):
            mlflow_monitor.log_metrics({"loss": 1.0 / (i + 1), "acc": i / steps}, step=i)
            if i % 100 == 0:
                time.sleep(0.02)  # several flush cycles, so the kills land mid-run
        deadline = time.monotonic() + 60
        while len(killed) < 2 and time.monotonic() < deadline:  # a kill after the last point, too
            mlflow_monitor.log_metrics({"loss": 0.0}, step=steps + len(killed))
            time.sleep(0.05)
        stop.set()
        t.join()
        assert len(killed) == 2
        assert mlflow_monitor.flush(timeout=120)
        mlflow_monitor.log_metrics({"after": 1.0}, step=1)  # the run goes on, through a new child
        assert mlflow_monitor.flush(timeout=120)
        assert writer.pid not in killed and not writer.in_process
    rid = run.info.run_id
    loss = MlflowClient().get_metric_history(rid, "loss")
    assert len(loss) == len({(m.step, m.timestamp, m.value) for m in loss})  # no row twice
    assert {m.step for m in loss} >= set(range(steps))
    assert _history(rid, "acc") == [(i, i / steps) for i in range(steps)]
    assert _history(rid, "after") == [(1, 1.0)]
    assert MlflowClient().get_run(rid).info.status == "FINISHED"


def test_poison_points_are_rejected_alone_through_the_writer_process(tracking_uri, tmp_path):
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"a": 1.0, "huge": 10**400}, step=1)
        mlflow_monitor.log_metrics({"a": 2.0}, step=2**70)
        get_pipeline().append_many(run.info.run_id, {"bad//../name": 1.0, "b": 3.0}, 3)
        mlflow_monitor.log_metrics({"a": 4.0}, step=4)
        assert mlflow_monitor.flush(timeout=60)
        writer = _writer(tracking_uri)
        assert isinstance(writer, SqlWriterProcess) and not writer.in_process
    rid = run.info.run_id
    assert _history(rid, "a") == [(1, 1.0), (4, 4.0)]
    assert _history(rid, "b") == [(3, 3.0)]
    rows = [json.loads(line) for line in (tmp_path / "monitor_home" / "rejected.jsonl").read_text().splitlines()]
    reasons = {r["point"][1]: r["error"] for r in rows}
    assert set(reasons) == {"huge", "a", "bad//../name"}
    assert "64-bit float" in reasons["huge"] and "64-bit" in reasons["a"]
    assert "Invalid metric name" in reasons["bad//../name"] or "invalid" in reasons["bad//../name"].lower()
    assert not any(d.backlog() for d in get_pipeline()._destinations.values())


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/bin/false"], ids=["no-python", "exits-at-once"])
def test_writer_process_start_failure_falls_back_to_in_process_writes_with_one_warning(
        tracking_uri, monkeypatch, monitor_logs, python):
    monkeypatch.setattr(sys, "executable", python)  # what the child is started with
    with mlflow.start_run() as run:
        for i in range(3):
            mlflow_monitor.log_metrics({"loss": float(i)}, step=i)
            assert mlflow_monitor.flush(timeout=60)
        writer = _writer(tracking_uri)
        assert isinstance(writer, SqlWriterProcess) and writer.in_process and writer.pid is None
    assert _history(run.info.run_id, "loss") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    warnings = [r.getMessage() for r in monitor_logs.records
                if r.levelno >= logging.WARNING and "writer process" in r.getMessage()]
    assert len(warnings) == 1 and "in the training process" in warnings[0] and ENV_WRITER_PROCESS in warnings[0]


def test_writer_process_off_switch_keeps_writes_in_process(tracking_uri, monkeypatch):
    monkeypatch.setenv(ENV_WRITER_PROCESS, "0")
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"loss": 0.25}, step=3)
        assert mlflow_monitor.flush(timeout=60)
        assert type(_writer(tracking_uri)) is SqlMetricWriter
    assert _history(run.info.run_id, "loss") == [(3, 0.25)]


def test_writer_process_switch_rejects_a_value_that_is_not_a_switch(monkeypatch):
    monkeypatch.setenv(ENV_WRITER_PROCESS, "maybe")
    with pytest.raises(ValueError, match=f"{ENV_WRITER_PROCESS}='maybe' is not a switch"):
        writer_process_enabled()
    with pytest.raises(TypeError, match="writer_process must be True, False or None, got 'yes'"):
        writer_process_enabled("yes")  # type: ignore[arg-type]


_EXITING_SCRIPT = textwrap.dedent("""
    import os, sys, mlflow, mlflow_monitor
    from mlflow_monitor.metrics import get_pipeline
    mlflow.set_tracking_uri(sys.argv[1])
    run = mlflow.start_run()
    mlflow_monitor.log_metrics({"warm": 0.0}, step=0)
    assert mlflow_monitor.flush(timeout=60)
    (dest,) = get_pipeline()._destinations.values()
    print(run.info.run_id, dest.sender.writer.pid, flush=True)
    for i in range(int(sys.argv[2])):
        mlflow_monitor.log_metrics({"loss": float(i), "lr": 0.1}, step=i)
    if sys.argv[3] == "sigkill":
        sys.stdout.flush()
        os.kill(os.getpid(), 9)
    # a normal exit, no flush(): the exit flush delivers the rest
""")


def test_exit_flush_delivers_everything_through_the_writer_process_and_leaves_no_process(tmp_path, tracking_uri):
    script = tmp_path / "train.py"
    script.write_text(_EXITING_SCRIPT)
    out = subprocess.run([sys.executable, str(script), tracking_uri, "50000", "exit"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, ENV_WRITER_PROCESS: "1"})
    assert out.returncode == 0, out.stderr
    run_id, pid = out.stdout.split()
    assert _wait_gone(int(pid), 5.0), "the writer process outlived the training process"
    assert len(MlflowClient().get_metric_history(run_id, "loss")) == 50000
    assert len(MlflowClient().get_metric_history(run_id, "lr")) == 50000


def test_writer_process_exits_when_the_training_process_is_sigkilled(tmp_path, tracking_uri):
    script = tmp_path / "train.py"
    script.write_text(_EXITING_SCRIPT)
    out = subprocess.run([sys.executable, str(script), tracking_uri, "1000", "sigkill"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, ENV_WRITER_PROCESS: "1"})
    assert out.returncode == -signal.SIGKILL
    run_id, pid = out.stdout.split()
    assert _wait_gone(int(pid), 20.0), "the writer process outlived a SIGKILLed training process"
    assert MlflowClient().get_metric_history(run_id, "warm")[0].value == 0.0


def test_a_forked_process_gets_its_own_writer_process(tracking_uri):
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"parent": 1.0}, step=1)
        assert mlflow_monitor.flush(timeout=60)
        parent_writer = _writer(tracking_uri).pid
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: log, flush, report its writer's pid, exit without atexit
            code = 1
            try:
                os.close(read)
                get_pipeline().append_many(run.info.run_id, {"child": 2.0}, 2)  # MLflow's active run is per process
                ok = mlflow_monitor.flush(timeout=60)
                os.write(write, f"{int(ok)} {_writer(tracking_uri).pid}".encode())
                get_pipeline().close()
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        with os.fdopen(read) as f:
            ok, child_writer = f.read().split()
        _, status = os.waitpid(pid, 0)
        assert status == 0 and ok == "1"
        assert int(child_writer) != parent_writer and _alive(parent_writer)
        mlflow_monitor.log_metrics({"parent": 3.0}, step=3)  # the parent's child still serves the parent
        assert mlflow_monitor.flush(timeout=60)
        assert _writer(tracking_uri).pid == parent_writer
    assert _history(run.info.run_id, "child") == [(2, 2.0)]
    assert _history(run.info.run_id, "parent") == [(1, 1.0), (3, 3.0)]
