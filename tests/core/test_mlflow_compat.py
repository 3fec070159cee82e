"""MLflow internals behind mlflow_monitor.mlflow_compat: the server options the gate reads."""

from __future__ import annotations

import mlflow

from mlflow_monitor import mlflow_compat


def test_version_tuple_matches_the_installed_mlflow():
    major, minor = (int(p) for p in mlflow.__version__.split(".")[:2])
    assert mlflow_compat.MLFLOW_VERSION[:2] == (major, minor)


def test_server_options_are_read_from_the_env_vars_mlflow_server_sets(monkeypatch):
    assert mlflow_compat.server_backend_store_uri() is None
    monkeypatch.setenv("_MLFLOW_SERVER_FILE_STORE", "sqlite:///srv.db")
    monkeypatch.setenv("_MLFLOW_SERVER_ARTIFACT_DESTINATION", "/srv/artifacts")
    assert mlflow_compat.server_backend_store_uri() == "sqlite:///srv.db"
    assert mlflow_compat.server_artifacts_destination() == "/srv/artifacts"


def test_server_env_var_names_agree_with_this_mlflow():
    # From MLflow 3.8 they live in mlflow.server.constants, before that in mlflow.server.
    try:
        from mlflow.server import constants as where
    except ImportError:
        import mlflow.server as where
    assert where.BACKEND_STORE_URI_ENV_VAR == "_MLFLOW_SERVER_FILE_STORE"
    assert where.ARTIFACTS_DESTINATION_ENV_VAR == "_MLFLOW_SERVER_ARTIFACT_DESTINATION"
