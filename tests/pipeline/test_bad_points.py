"""One bad point stays alone: it is set aside in rejected.jsonl with the reason and a warning
naming it, and never blocks, spools or costs its neighbours."""

from __future__ import annotations

import json
import logging
import os

import mlflow
from mlflow import MlflowClient

import mlflow_monitor
from mlflow_monitor.metrics import get_pipeline
from mlflow_monitor.retry import is_permanent


def _rejected(tmp_path) -> list[dict]:
    path = tmp_path / "monitor_home" / "rejected.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _spooled_points(tmp_path) -> int:
    spool = tmp_path / "monitor_home" / "spool"
    files = list(spool.glob("*.jsonl")) if spool.exists() else []
    return sum(len(f.read_text().splitlines()) - 1 for f in files)  # minus each header line


def test_a_value_float_cannot_hold_is_rejected_and_its_batch_neighbours_are_stored(tmp_path, monitor_logs):
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"a": 1.0, "huge": 10**400, "b": 2.0}, step=1)
        mlflow_monitor.log_metrics({"c": 3.0}, step=2)
        assert mlflow_monitor.flush(timeout=30) is True
    assert MlflowClient().get_run(run.info.run_id).data.metrics == {"a": 1.0, "b": 2.0, "c": 3.0}
    (row,) = _rejected(tmp_path)
    assert row["point"][1] == "huge" and "out of the range of a 64-bit float" in row["error"]
    assert any("'huge'" in r.getMessage() and "rejected.jsonl" in r.getMessage() for r in monitor_logs.records if r.levelno >= logging.WARNING)
    assert _spooled_points(tmp_path) == 0


def test_a_step_beyond_int64_is_rejected_not_spooled_and_neighbours_are_stored(tmp_path):
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"loss": 1.0}, step=1)
        mlflow_monitor.log_metrics({"loss": 9.0, "acc": 0.5}, step=2**70)
        mlflow_monitor.log_metrics({"loss": 0.5}, step=3)
        assert mlflow_monitor.flush(timeout=30) is True
    history = MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 1.0), (3, 0.5)]
    rejected = _rejected(tmp_path)
    assert sorted(r["point"][1] for r in rejected) == ["acc", "loss"]
    assert all(r["point"][4] == 2**70 and "64-bit" in r["error"] for r in rejected)
    assert _spooled_points(tmp_path) == 0
    assert not any(d.backlog() for d in get_pipeline()._destinations.values())


def test_points_appended_past_validation_are_rejected_alone(tmp_path):
    """Integrations append straight to the pipeline: a NaN step or a string value is set aside there too."""
    pipe = get_pipeline()
    with mlflow.start_run() as run:
        rid = run.info.run_id
        pipe.append(rid, "ok", 1.0, 1)
        pipe.append(rid, "nan_step", 1.0, float("nan"))  # type: ignore[arg-type]
        pipe.append(rid, "text", "high", 1)
        pipe.append_many(rid, {"ok2": 2.0}, 2)
        assert pipe.flush(timeout=30) is True
    assert MlflowClient().get_run(rid).data.metrics == {"ok": 1.0, "ok2": 2.0}
    assert sorted(r["point"][1] for r in _rejected(tmp_path)) == ["nan_step", "text"]


def test_a_warning_names_each_bad_key_once_and_the_file_keeps_every_point(tmp_path, monitor_logs):
    with mlflow.start_run():
        for step in range(5):
            mlflow_monitor.log_metrics({"huge": 10**400}, step=step)
            assert mlflow_monitor.flush(timeout=30)
    assert len(_rejected(tmp_path)) == 5
    assert sum("'huge'" in r.getMessage() for r in monitor_logs.records if r.levelno >= logging.WARNING) == 1


def test_rejected_file_is_private(tmp_path):
    with mlflow.start_run():
        mlflow_monitor.log_metrics({"huge": 10**400}, step=0)
        assert mlflow_monitor.flush(timeout=30)
    path = tmp_path / "monitor_home" / "rejected.jsonl"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700


def test_overflow_from_a_store_is_permanent_so_it_cannot_stick_the_spool():
    assert is_permanent(OverflowError("Python int too large to convert to SQLite INTEGER"))
