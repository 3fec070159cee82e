"""Shared fixtures: every test gets its own sqlite MLflow store and monitor home."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture(scope="session")
def _migrated_template_db(tmp_path_factory):
    """One sqlite MLflow DB whose schema is created once per session (that costs seconds)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("template") / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}")
    client.search_experiments()
    client.search_registered_models()
    return path


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path, monkeypatch, _migrated_template_db):
    """Private MLFLOW_MONITOR_HOME, sqlite tracking/registry store and clean globals."""
    import shutil
    import sqlite3

    import mlflow

    home = tmp_path / "monitor_home"
    monkeypatch.setenv("MLFLOW_MONITOR_HOME", str(home))
    for var in ("SLACK_BOT_TOKEN", "SLACK_WEBHOOK_URL", "SLACK_CHANNEL", "SLACK_API_URL", "MLFLOW_UI_URL",
                "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_RUN_ID",
                "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_MONITOR_EVIDENCE_KEY",
                "MLFLOW_MONITOR_EVIDENCE_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "mlflow.db"
    shutil.copy(_migrated_template_db, db)  # a private copy per test
    with sqlite3.connect(db) as conn:  # the Default experiment's artifacts go under this test's dir
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0",
            ((tmp_path / "mlruns" / "0").as_uri(),),
        )
    conn.close()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    yield
    reports = sys.modules.get("mlflow_monitor.gate.report_worker")
    if reports is not None:  # a gate report built in the background lands in this test's store
        reports.wait_for_reports(180)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    try:
        import mlflow_monitor

        mlflow_monitor.autolog(disable=True, silent=True)
    except Exception:
        pass
    try:
        from mlflow_monitor.metrics import reset_pipeline

        reset_pipeline()
    except Exception:
        pass
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    mlflow.tracking.fluent._active_experiment_id = None  # mlflow.set_experiment() must not leak
    # ... nor the MLFLOW_EXPERIMENT_ID it exports for subprocesses (MLflow 3.17): monkeypatch
    # only restores what was there at setup, and a leaked id names an experiment of another
    # test's store (the next server-backed test's runs would fail to start)
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


@pytest.fixture
def mlflow_db(tmp_path) -> Path:
    """This test's private sqlite MLflow DB (already the tracking and registry URI)."""
    return tmp_path / "mlflow.db"


@pytest.fixture
def tracking_uri() -> str:
    import mlflow

    return mlflow.get_tracking_uri()


@pytest.fixture
def mlflow_server(tmp_path):
    """Factory: ``mlflow_server(registry_store_uri=...)`` -> started MlflowServer, stopped at teardown."""
    from helpers.servers import MlflowServer

    started = []

    def _make(**kwargs):
        srv = MlflowServer(tmp_path / f"server{len(started)}", **kwargs)
        started.append(srv)
        return srv.start()

    yield _make
    for srv in started:
        srv.stop()


@pytest.fixture
def monitor_logs():
    """Records of the ``mlflow_monitor`` loggers, captured on that logger itself.

    Unlike ``caplog`` (a handler on the root logger) this survives a library that
    reconfigures logging mid-test: MLflow 3.3 runs alembic's ``fileConfig`` when it creates
    a database's tables, which replaces the root logger's handlers.
    """
    import logging

    class _Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

        @property
        def text(self) -> str:
            return "\n".join(r.getMessage() for r in self.records)

    handler = _Records()
    logger = logging.getLogger("mlflow_monitor")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old_level)
