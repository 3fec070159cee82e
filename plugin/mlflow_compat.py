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
# The run lifecycle (mlflow_monitor.runs) wraps the fluent `end_run` and stops MLflow's
# own system-metrics monitor on runs our sampler covers.
from typing import Any, Callable  # noqa: E402  (per section, so the area merges stay apart)

__all__ += ["end_run_owners", "pop_mlflow_system_metrics_monitor"]


def end_run_owners() -> list[Any]:
    """The modules ``end_run`` is reachable by: ``mlflow`` and ``mlflow.tracking.fluent``.

    ``mlflow.end_run`` is a re-export of ``mlflow.tracking.fluent.end_run``; MLflow's own
    code (``with mlflow.start_run():``, ``ActiveRun.__exit__``) calls the fluent one, so
    both names must be wrapped. Fallback, should the module move: ``mlflow`` alone.
    """
    try:
        from mlflow.tracking import fluent
    except ImportError:
        return [mlflow]
    return [fluent, mlflow] if hasattr(fluent, "end_run") else [mlflow]


def pop_mlflow_system_metrics_monitor(run_id: str) -> Optional[Any]:
    """Take MLflow's ``SystemMetricsMonitor`` of ``run_id`` out of its table, else None.

    ``mlflow.start_run(log_system_metrics=True)`` keeps it in the private
    ``fluent.run_id_to_system_metrics_monitor`` dict (MLflow >= 2.8) and ``end_run``
    finishes what it finds there, so popping it also keeps ``end_run`` from finishing it
    twice. Fallback (no such dict): None, nothing of MLflow's to stop.
    """
    try:
        from mlflow.tracking import fluent
    except ImportError:
        return None
    monitors = getattr(fluent, "run_id_to_system_metrics_monitor", None)
    if not isinstance(monitors, dict):
        return None
    return monitors.pop(run_id, None)


# --------------------------------------------------------------------------- autolog --
# `mlflow.utils.autologging_utils` and `mlflow.utils.import_hooks` are MLflow's internal
# helpers for its own flavors' autolog (there since MLflow 1.x, not public API).

__all__ += ["autologging_event_logger_class", "autologging_is_disabled", "register_post_import_hook"]


def autologging_is_disabled(flavor: str) -> bool:
    """True when ``mlflow.<flavor>.autolog`` is off (never enabled, or disabled).

    Fallback (helper gone): True, so we neither skip keys MLflow would log nor leave
    ``mlflow.sklearn.autolog`` off: at worst it is enabled once more with our settings.
    """
    try:
        from mlflow.utils.autologging_utils import autologging_is_disabled as is_disabled
    except ImportError:
        return True
    return bool(is_disabled(flavor))


def register_post_import_hook(hook: Callable[[Any], None], module_name: str) -> None:
    """Call ``hook(module)`` when ``module_name`` is imported (at once if it already is).

    MLflow de-duplicates hooks by function, so registering a module-level function twice
    keeps one. Post-import hooks cannot be removed: they stay registered for the process
    and must do nothing when autolog is off. Fallback (no MLflow import hooks): call the
    hook now if the module is imported; a later import is then not seen.
    """
    try:
        from mlflow.utils.import_hooks import register_post_import_hook as register
    except ImportError:
        import sys

        if module_name in sys.modules:
            hook(sys.modules[module_name])
        return
    register(hook, module_name)


def autologging_event_logger_class() -> Optional[type]:
    """MLflow's ``AutologgingEventLogger`` (``get_logger()``/``set_logger()``), or None.

    It is the official hook into MLflow's autolog events (the start and end of the
    original ``fit`` inside ``mlflow.sklearn.autolog``'s patch). Fallback (moved or
    gone): None, the sklearn part then adds nothing to MLflow's runs.
    """
    try:
        from mlflow.utils.autologging_utils import AutologgingEventLogger
    except ImportError:
        return None
    if not (hasattr(AutologgingEventLogger, "get_logger") and hasattr(AutologgingEventLogger, "set_logger")):
        return None
    return AutologgingEventLogger


# ------------------------------------------------------------------------------ gate --
# (model-registry store builder, artifact repository registry, stage names)

