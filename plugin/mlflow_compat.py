"""Every use of MLflow's internals, in one place.

MLflow's public API (``mlflow``, ``MlflowClient``, ``mlflow.entities``, ``MlflowException``
and the error codes of ``mlflow.protos.databricks_pb2``) is imported where it is used.
Anything else -- private names, module paths that moved between releases, attributes
read off MLflow's objects -- is reached only through this module. Each function says
what it reaches, since which release it is where we look, and what happens when it is
missing. When MLflow moves something, this is the one file to change.

The supported floor is stated in ``pyproject.toml`` and tested by ``.ci/run``.
"""

from __future__ import annotations

import os
from typing import Optional

import mlflow

__all__ = [
    "MLFLOW_VERSION",
    "server_artifacts_destination",
    "server_backend_store_uri",
]


def _version_tuple(text: str) -> tuple[int, ...]:
    out = []
    for part in text.split(".")[:3]:
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


MLFLOW_VERSION: tuple[int, ...] = _version_tuple(mlflow.__version__)


# ---------------------------------------------------------------------------- server --
# `mlflow server` hands its options to the app workers through environment variables.
# Their names live in `mlflow.server.constants` from MLflow 3.8; before that they were
# module constants of `mlflow.server` itself. The names are stable, so the fallback is
# the literal name when neither import works.

def _server_env_var(name: str, default: str) -> str:
    try:
        from mlflow.server import constants  # MLflow >= 3.8

        return str(getattr(constants, name))
    except (ImportError, AttributeError):
        pass
    try:
        import mlflow.server as server  # MLflow < 3.8

        return str(getattr(server, name))
    except (ImportError, AttributeError):
        return default


def server_backend_store_uri() -> Optional[str]:
    """The ``--backend-store-uri`` of the ``mlflow server`` this process runs in, else None."""
    return os.environ.get(_server_env_var("BACKEND_STORE_URI_ENV_VAR", "_MLFLOW_SERVER_FILE_STORE")) or None


def server_artifacts_destination() -> Optional[str]:
    """The ``--artifacts-destination`` of the ``mlflow server`` this process runs in, else None."""
    return os.environ.get(
        _server_env_var("ARTIFACTS_DESTINATION_ENV_VAR", "_MLFLOW_SERVER_ARTIFACT_DESTINATION")
    ) or None


# --------------------------------------------------------------------------- metrics --
# (tracking store internals used by the metrics pipeline: REST calls without MLflow's
# retry schedule, metric-name validation, SQL models for the bulk writer)


# ------------------------------------------------------------------------------ runs --
# (fluent run state: the active run of this thread, system-metrics monitors)


# --------------------------------------------------------------------------- autolog --
# (autologging utilities and import hooks)


# ------------------------------------------------------------------------------ gate --
# (model-registry store builder, artifact repository registry, stage names)

