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
# Tracking-store internals used by the metrics pipeline, the run context and the bounded
# client: the fluent active-run stack (read on the hot path), metric-name validation, one
# REST request without MLflow's retry schedule, the log-batch proto, and the SQL models
# and engine the bulk writer writes through.

from typing import Any, Sequence  # noqa: E402  (kept in this section so the sections merge cleanly)

__all__ += ["active_run_stack_local", "log_batch_json", "rest_call", "sql_metric_tables",
            "sql_store_engine", "validate_metric_name"]

def active_run_stack_local() -> Optional[Any]:
    """The ``threading.local`` behind MLflow's fluent active-run stack, or None.

    ``mlflow.tracking.fluent._active_run_stack`` is a ``ThreadLocalVariable`` (MLflow >= 2.10)
    whose ``thread_local.value`` is ``(stack, pid)`` once the thread has touched it (no
    ``value`` before; ``pid`` is the process that filled it, as MLflow resets the stack in
    a forked child). Reading it costs ~0.1 us, against ~2 us for ``mlflow.active_run()``,
    which matters on the per-step hot path. None when MLflow keeps the stack otherwise;
    readers fall back to the public ``mlflow.active_run()`` whenever the value is missing
    or not shaped like this.
    """
    try:
        from mlflow.tracking import fluent

        local = fluent._active_run_stack.thread_local
    except (ImportError, AttributeError):
        return None
    return local


def validate_metric_name(name: str) -> None:
    """Raise ``MlflowException(INVALID_PARAMETER_VALUE)`` when MLflow would refuse ``name``.

    ``mlflow.utils.validation._validate_metric_name`` is private (stable since MLflow 1.x);
    without it, a conservative copy of its rule (the characters MLflow allows, no ``..`` or
    absolute path) raises the same error code.
    """
    try:
        from mlflow.utils.validation import _validate_metric_name
    except ImportError:
        _validate_metric_name = _metric_name_fallback
    _validate_metric_name(name)


def _metric_name_fallback(name: str) -> None:
    import posixpath
    import re

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    # MLflow's rule: slashes, alphanumerics, underscores, periods, dashes, colons and spaces,
    # and a path that stays where it is (no "..", no leading "/", no "a//b").
    norm = posixpath.normpath(name) if isinstance(name, str) else ""
    if (not isinstance(name, str) or not re.fullmatch(r"[/\w.\- :]*", name)
            or norm != name or norm == "." or norm.startswith(("..", "/"))):
        raise MlflowException(f"Invalid metric name: {name!r}", INVALID_PARAMETER_VALUE)


def rest_call(base_uri: str, endpoint: str, method: str, timeout_s: float, **kwargs: Any) -> dict[str, Any]:
    """One request to the MLflow server at ``base_uri``, with no client-side retries.

    MLflow's ``http_request`` (``mlflow.utils.rest_utils``, private) adds the auth headers
    and credentials MLflow would send (``mlflow.utils.credentials.get_default_host_creds``,
    from MLflow 2.x); ``max_retries=0`` turns off its retry schedule, which would stall a
    caller for minutes while a server is down. ``verify_rest_response`` turns an error
    answer into the ``MlflowException`` (with MLflow's error code) the client would raise.
    Connection errors and timeouts come back as ``MlflowException`` (INTERNAL_ERROR).
    Returns the JSON answer (``{}`` when it is empty).
    """
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    try:
        from mlflow.utils.credentials import get_default_host_creds
    except ImportError:  # before the credentials module existed
        from mlflow.tracking._tracking_service.utils import _get_default_host_creds as get_default_host_creds

    response = http_request(get_default_host_creds(base_uri), endpoint, method, max_retries=0, backoff_factor=0,
                            timeout=timeout_s, raise_on_status=False, **kwargs)
    verify_rest_response(response, endpoint)
    try:
        return response.json() or {}
    except ValueError:
        return {}


def log_batch_json(run_id: str, metrics: Sequence[Any]) -> dict[str, Any]:
    """The JSON body of ``/runs/log-batch`` for ``metrics`` (``mlflow.entities.Metric``).

    Built from MLflow's own proto (``mlflow.protos.service_pb2.LogBatch``) and its proto-JSON
    writer, so NaN and infinities are encoded the way the server parses them.
    """
    import json

    from mlflow.protos.service_pb2 import LogBatch
    from mlflow.utils.proto_json_utils import message_to_json

    return json.loads(message_to_json(LogBatch(run_id=run_id, metrics=[m.to_proto() for m in metrics])))


def sql_metric_tables() -> tuple[Any, Any, Any]:
    """MLflow's ``metrics``, ``latest_metrics`` and ``runs`` tables (SQLAlchemy ``Table``).

    From ``mlflow.store.tracking.dbmodels.models`` (internal; stable since MLflow 1.x).
    Raises ImportError/AttributeError when they moved; the bulk writer is then not used.
    """
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun

    return SqlMetric.__table__, SqlLatestMetric.__table__, SqlRun.__table__


def sql_store_engine(tracking_uri: str) -> Any:
    """The SQLAlchemy engine of the SQL tracking store at ``tracking_uri``.

    Read off ``MlflowClient._tracking_client.store.engine`` (private attributes), so the
    bulk writer shares MLflow's engine and its migrated schema. Raises AttributeError when
    MLflow keeps it otherwise; the bulk writer is then not used.
    """
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)._tracking_client.store.engine


# ------------------------------------------------------------------------------ runs --
# (fluent run state: the active run of this thread, system-metrics monitors)


# --------------------------------------------------------------------------- autolog --
# (autologging utilities and import hooks)


# ------------------------------------------------------------------------------ gate --
# (model-registry store builder, artifact repository registry, stage names)

