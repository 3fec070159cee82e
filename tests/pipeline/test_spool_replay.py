"""Spool files left by earlier processes: replayed in order, torn lines dropped, a dead store never blocks a live one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import mlflow
from mlflow import MlflowClient

import mlflow_monitor
from mlflow_monitor.metrics import replay_spools, reset_pipeline


def _history(run_id: str, key: str, uri: str | None = None):
    return sorted(MlflowClient(uri).get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))


_CHILD = textwrap.dedent(
    """
    import sys, mlflow
    from mlflow_monitor.metrics import get_pipeline
    mlflow.set_tracking_uri(sys.argv[1])
    pipe = get_pipeline()
    for i in range(200):
        pipe.append(sys.argv[2], "m", float(i), i)
    """
)


def test_points_undelivered_at_exit_stay_in_spool_and_next_process_replays_them(mlflow_server, tmp_path, monkeypatch):
    srv = mlflow_server()
    client = MlflowClient(srv.url)
    exp = client.create_experiment("spool")
    rid = client.create_run(exp).info.run_id
    env = {"MLFLOW_MONITOR_EXIT_FLUSH_TIMEOUT_S": "2"}
    srv.stop()
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, srv.url, rid],
        capture_output=True, text=True, timeout=120, env={**__import__("os").environ, **env},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    spool_files = list((tmp_path / "monitor_home" / "spool").glob("*.jsonl"))
    assert spool_files, proc.stderr[-2000:]
    assert str(spool_files[0]) in proc.stderr  # the warning names the file
    srv.start()
    reset_pipeline()
    mlflow.set_tracking_uri(srv.url)
    assert replay_spools(timeout=60)
    hist = sorted(client.get_metric_history(rid, "m"), key=lambda m: m.step)
    assert [m.step for m in hist] == list(range(200))


def _write_orphan(spool_dir, uri: str, lines: list[str]) -> None:
    spool_dir.mkdir(parents=True, exist_ok=True)
    header = json.dumps({"mlflow_monitor_spool": 1, "tracking_uri": uri, "pid": 1, "created": 1.0})
    (spool_dir / "orphan.jsonl").write_text(header + "\n" + "".join(lines))


def test_torn_last_line_of_a_dead_process_spool_is_dropped_and_the_rest_replayed(tmp_path, tracking_uri):
    with mlflow.start_run() as run:
        rid = run.info.run_id
    lines = [json.dumps([rid, "m", float(i), 1000 + i, i]) + "\n" for i in range(5)]
    _write_orphan(tmp_path / "monitor_home" / "spool", tracking_uri, lines + [f'["{rid}", "m", 9.0, 10'])
    reset_pipeline()
    assert replay_spools(timeout=60)
    assert [m.value for m in _history(rid, "m")] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert not list((tmp_path / "monitor_home" / "spool").glob("*.jsonl"))


def test_orphan_spool_of_an_unreachable_store_does_not_hold_back_a_healthy_store(tmp_path):
    _write_orphan(tmp_path / "monitor_home" / "spool", "http://127.0.0.1:9", [json.dumps(["r", "m", 1.0, 1, 0]) + "\n"])
    reset_pipeline()
    with mlflow.start_run() as run:
        for i in range(5):
            mlflow_monitor.log_metrics({"ok": float(i)}, step=i)
        assert mlflow_monitor.flush(timeout=30)  # the dead store's orphan is not this process's backlog
    assert [m.value for m in _history(run.info.run_id, "ok")] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list((tmp_path / "monitor_home" / "spool").glob("orphan.jsonl"))  # kept for later
