"""Fixtures for the health tests: a pre-migrated private MLflow DB (schema creation costs seconds)."""

from __future__ import annotations

import shutil

import pytest


@pytest.fixture(scope="session")
def _migrated_health_db(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("health_template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}", registry_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_db(_migrated_health_db, tmp_path):
    """A private copy of the pre-migrated DB, set as tracking and registry URI."""
    import mlflow

    path = tmp_path / "health_mlflow.db"
    shutil.copy(_migrated_health_db, path)
    mlflow.set_tracking_uri(f"sqlite:///{path}")
    mlflow.set_registry_uri(f"sqlite:///{path}")
    return path


@pytest.fixture(autouse=True)
def _health_off():
    from mlflow_monitor import health

    health.disable(timeout=1.0)
    yield
    health.disable(timeout=1.0)
