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
import sys
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

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
# The run lifecycle (mlflow_monitor.runs) wraps the fluent `end_run` and stops MLflow's
# own system-metrics monitor on runs our sampler covers.

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
# (model-registry store builder, artifact repository registry, stage names, dataset
# input tags, the model-evaluator plugin base classes)


__all__ += [
    "artifact_repository",
    "canonical_stage",
    "dataset_context_tag",
    "dataset_entity",
    "evaluation_artifact_classes",
    "model_evaluator_classes",
    "register_artifact_repository",
    "registry_store",
    "registry_store_builder",
]


def registry_store_builder(store_uri: str) -> Callable[..., Any]:
    """The function MLflow would build the registry store for ``store_uri`` with.

    MLflow has no public API for it: ``mlflow.tracking._model_registry.utils.
    _get_store_registry()`` (private, present from MLflow 2.x through 3.x). The
    ``monitor:`` store needs the *builder*, never ``get_store()``: MLflow calls our builder
    while holding its non-reentrant store lock. No fallback: without it there is no store.
    """
    from mlflow.tracking._model_registry.utils import _get_store_registry

    return _get_store_registry().get_store_builder(store_uri)


def registry_store(store_uri: str, tracking_uri: Optional[str]) -> Any:
    """The registry store MLflow builds for ``store_uri`` (cached by MLflow), as
    ``MlflowClient`` would use it; same private registry as :func:`registry_store_builder`."""
    from mlflow.tracking._model_registry.utils import _get_store_registry

    return _get_store_registry().get_store(store_uri, tracking_uri)


def canonical_stage(stage: str) -> str:
    """``"production"`` -> ``"Production"``, as MLflow stores stages.

    ``mlflow.entities.model_registry.model_version_stages.get_canonical_stage`` is not in
    MLflow's documented API (stages are deprecated); when it is missing or rejects the
    name, the name is used as given and MLflow's own call reports a bad stage.
    """
    try:
        from mlflow.entities.model_registry.model_version_stages import get_canonical_stage

        return str(get_canonical_stage(stage))
    except Exception:
        return str(stage)


def artifact_repository(artifact_uri: str) -> Any:
    """MLflow's artifact repository for ``artifact_uri``.

    ``mlflow.store.artifact.artifact_repository_registry.get_artifact_repository`` is
    internal but stable since MLflow 1.x; it is the only way to resolve a URI to a
    repository without a tracking client.
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(artifact_uri)


def register_artifact_repository(scheme: str, factory: Callable[..., Any]) -> bool:
    """Register ``factory`` for ``scheme`` in MLflow's artifact repository registry, once.

    Reaches the private module-level ``_artifact_repository_registry`` (and its
    ``_registry`` dict to stay idempotent). Returns False, changing nothing, when this
    MLflow has no such registry (a later release may rename it): the feature that needs
    it (server-side reads of ``mlflow-artifacts:/``) is then off, and the rest works.
    """
    try:
        from mlflow.store.artifact import artifact_repository_registry as reg

        registry = reg._artifact_repository_registry
    except (ImportError, AttributeError):
        return False
    if getattr(registry, "_registry", {}).get(scheme) is factory:
        return True
    registry.register(scheme, factory)
    return True


def dataset_context_tag() -> str:
    """The input-tag key of a dataset input's context (``mlflow.log_input(context=...)``).

    ``mlflow.utils.mlflow_tags.MLFLOW_DATASET_CONTEXT`` is internal; its value has been
    ``"mlflow.data.context"`` since datasets were added (2.4), which is the fallback.
    """
    try:
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        return str(MLFLOW_DATASET_CONTEXT)
    except (ImportError, AttributeError):
        return "mlflow.data.context"


def dataset_entity(dataset: Any) -> Any:
    """The ``mlflow.entities.Dataset`` of an ``mlflow.data`` dataset, for
    ``MlflowClient.log_inputs``.

    ``Dataset._to_mlflow_entity()`` is private; without it the entity is built from the
    public ``to_dict()`` (name, digest, source_type, source, schema, profile).
    """
    to_entity = getattr(dataset, "_to_mlflow_entity", None)
    if callable(to_entity):
        return to_entity()
    from mlflow.entities import Dataset as DatasetEntity

    d = dataset.to_dict()
    return DatasetEntity(name=d["name"], digest=d["digest"], source_type=d["source_type"],
                         source=d["source"], schema=d.get("schema"), profile=d.get("profile"))


def model_evaluator_classes() -> tuple[type, type]:
    """``(ModelEvaluator, EvaluationResult)``: the base class and result type of an
    ``mlflow.model_evaluator`` plugin. Exported by ``mlflow.models.evaluation`` in every
    supported release; ``mlflow.models.evaluation.base`` is where older ones define them."""
    try:
        from mlflow.models.evaluation import EvaluationResult, ModelEvaluator
    except ImportError:
        from mlflow.models.evaluation.base import EvaluationResult, ModelEvaluator
    return ModelEvaluator, EvaluationResult


def evaluation_artifact_classes() -> tuple[type, type]:
    """``(TextEvaluationArtifact, JsonEvaluationArtifact)`` for an evaluator's result.
    Internal module ``mlflow.models.evaluation.artifacts`` (stable since MLflow 2.0)."""
    from mlflow.models.evaluation.artifacts import JsonEvaluationArtifact, TextEvaluationArtifact

    return TextEvaluationArtifact, JsonEvaluationArtifact


# ------------------------------------------------------------------------- gate auth --
# Who is calling the `monitor:` store inside `mlflow server --app-name basic-auth`, and what
# MLflow's own permission store lets them do on a registered model; plus the registry URI of
# already-built MlflowClients (enable_gating swaps it). MLflow's auth app has no public
# Python API for either: the names below are module-level functions of `mlflow.server.auth`
# (MLflow >= 2.5; the resolver names changed in 3.x, both are tried). Every fallback fails
# closed: no identity, no permission.


__all__ += ["AuthGrant", "client_registry_uri", "live_mlflow_clients", "server_auth_grant",
            "server_auth_user", "server_request_active", "set_client_registry_uri"]


class AuthGrant(NamedTuple):
    """What MLflow's auth store grants the request's user on one registered model."""

    permission: str  # READ | USE | EDIT | MANAGE | DENY | NO_PERMISSIONS
    can_update: bool
    can_manage: bool
    is_admin: bool


def server_request_active() -> bool:
    """True inside a request handled by ``mlflow server`` (a Flask request context)."""
    try:
        import flask
    except ImportError:
        return False
    return bool(flask.has_request_context())


def _auth_module() -> Optional[Any]:
    # Only when the auth app is what this server runs: `--app-name basic-auth` imports it
    # in the worker; we never import it ourselves (its import builds the auth store).
    return sys.modules.get("mlflow.server.auth")


def server_auth_user() -> Optional[str]:
    """The user MLflow's auth app authenticated for this request, else None.

    The auth app's ``before_request`` stores it in ``flask.g.mlflow_authenticated_user``
    (MLflow >= 3.x) after checking the password; older releases are asked again through
    ``mlflow.server.auth.authenticate_request()``, which returns a werkzeug
    ``Authorization`` only for valid credentials (a Response otherwise). Never read from a
    header without that check: without the auth app the ``Authorization`` header is a
    client's claim.
    """
    auth = _auth_module()
    if auth is None or not server_request_active():
        return None
    import flask

    user = getattr(flask.g, "mlflow_authenticated_user", None)
    if user:
        return str(user)
    try:
        from werkzeug.datastructures import Authorization

        result = auth.authenticate_request()
    except Exception:
        return None
    if isinstance(result, Authorization) and result.username:
        return str(result.username)
    return None


def server_auth_grant(name: str) -> Optional[AuthGrant]:
    """The request user's permission on registered model (or prompt) ``name``; None when
    the server runs no auth app or the lookup fails (the caller then grants nothing).

    Reads ``mlflow.server.auth.store.get_user(user).is_admin`` and the resolver
    ``_get_registered_model_or_prompt_permission`` (3.x) or
    ``_get_registered_model_permission`` (2.x), private functions that apply the auth
    app's own rules (grants, roles, ``default_permission``).
    """
    auth = _auth_module()
    user = server_auth_user()
    if auth is None or user is None:
        return None
    try:
        is_admin = bool(auth.store.get_user(user).is_admin)
    except Exception:
        return None
    if is_admin:
        return AuthGrant("ADMIN", True, True, True)
    perm = None
    for resolver in ("_get_registered_model_or_prompt_permission", "_get_registered_model_permission"):
        fn = getattr(auth, resolver, None)
        if fn is None:
            continue
        try:
            perm = fn(name)
            break
        except Exception:
            continue
    if perm is None:
        return None
    return AuthGrant(str(getattr(perm, "name", "?")), bool(getattr(perm, "can_update", False)),
                     bool(getattr(perm, "can_manage", False)), False)


def live_mlflow_clients() -> list[Any]:
    """Every ``MlflowClient`` alive in this process (a scan of the garbage collector's
    objects; a one-off cost of a few ms per 100k objects)."""
    import gc

    from mlflow.tracking import MlflowClient

    return [o for o in gc.get_objects() if isinstance(o, MlflowClient)]


def client_registry_uri(client: Any) -> Optional[str]:
    """The registry URI an ``MlflowClient`` resolved at construction (``_registry_uri``,
    private, MLflow 1.x-3.x); None when it keeps it elsewhere."""
    uri = getattr(client, "_registry_uri", None)
    return uri if isinstance(uri, str) else None


def set_client_registry_uri(client: Any, uri: str) -> bool:
    """Point an existing ``MlflowClient`` at registry ``uri``: set ``_registry_uri`` and drop
    its lazily built registry client (``_registry_client_lazy``), so the next registry call
    builds the store for ``uri``. False (nothing changed) when the client does not keep
    them under these names."""
    if client_registry_uri(client) is None:
        return False
    client._registry_uri = uri
    if hasattr(client, "_registry_client_lazy"):
        client._registry_client_lazy = None
    return True

# --------------------------------------------------------------------------- gate db --
# The audit table and the promotion locks live in the registry's own database; inside
# `mlflow server` the gate finds that database's URI where the server put it.

__all__ += ["server_registry_store_uri"]


def server_registry_store_uri() -> Optional[str]:
    """The ``--registry-store-uri`` of the ``mlflow server`` this process runs in, else None.

    ``REGISTRY_STORE_URI_ENV_VAR`` (``_MLFLOW_SERVER_REGISTRY_STORE``), in
    ``mlflow.server.constants`` from 3.8 and ``mlflow.server`` before (see
    :func:`_server_env_var`). Set only when the server got ``--registry-store-uri``; without
    it the server's registry is its backend store, which it also makes the process's
    registry URI (``mlflow.get_registry_uri()``), where callers look next.
    """
    return os.environ.get(_server_env_var("REGISTRY_STORE_URI_ENV_VAR", "_MLFLOW_SERVER_REGISTRY_STORE")) or None

# --------------------------------------------------------------------- gate contract --
# (the server's default artifact root, for the data roots the gate may read on a server)

__all__ += ["server_artifact_root"]


def server_artifact_root() -> Optional[str]:
    """The ``--default-artifact-root`` of the ``mlflow server`` this process runs in, else None
    (same environment-variable hand-over as :func:`server_backend_store_uri`)."""
    return os.environ.get(_server_env_var("ARTIFACT_ROOT_ENV_VAR", "_MLFLOW_SERVER_ARTIFACT_ROOT")) or None

# ----------------------------------------------------------------------- production --
# `mlflow-monitor serve` is MLflow's own scoring server with capture around it: the
# FastAPI app of `mlflow.pyfunc.scoring_server` (not public API; `mlflow models serve`
# runs the same app), so /invocations, /ping, /health and /version answer exactly as
# MLflow's do.

__all__ += ["scoring_app"]


def scoring_app(model: Any) -> Any:
    """``mlflow.pyfunc.scoring_server.init(model)``: MLflow's scoring app for a loaded
    pyfunc model (present, with this signature, from 3.0 on; FastAPI since 3.0)."""
    from mlflow.pyfunc import scoring_server

    return scoring_server.init(model)

# ------------------------------------------------------------------ sklearn in runs --
# autolog() turns mlflow.sklearn.autolog on for fits inside a run; a fit outside any run
# (the user's, or one inside a library such as a drift report) must not create a run that
# nobody asked for (integrations/sklearn.py).

__all__ += ["has_active_training_session", "managed_run_module"]


def managed_run_module() -> Optional[Any]:
    """The module whose ``with_managed_run`` MLflow's ``safe_patch`` wraps a
    ``manage_run=True`` patch with, or None.

    ``mlflow.utils.autologging_utils.safety.with_managed_run`` is private (there since
    MLflow 1.14). ``safe_patch`` looks the name up in that module each time it installs a
    patch, so a replacement set there while ``mlflow.sklearn.autolog()`` runs decides
    whether the sklearn patches start runs; it is put back right after. None when the
    module or the function is not there: the caller then leaves sklearn autolog off.
    """
    try:
        from mlflow.utils.autologging_utils import safety
    except ImportError:
        return None
    return safety if callable(getattr(safety, "with_managed_run", None)) else None


def has_active_training_session() -> bool:
    """MLflow's ``_has_active_training_session()`` (private): a fit is being autologged on
    some thread, as ``with_managed_run`` checks before it starts a run. False when gone."""
    try:
        from mlflow.utils.autologging_utils import _has_active_training_session
    except ImportError:
        return False
    return bool(_has_active_training_session())

# ------------------------------------------------------------- run artifact deletion --
# MLflow's client has no API to delete a run's artifacts; its artifact repositories have
# ``delete_artifacts(artifact_path)`` (local, mlflow-artifacts proxy, S3, GCS, Azure,
# ...; some raise NotImplementedError). The production closer prunes merged partials
# with it, best effort (production/closer.py).

__all__ += ["delete_run_artifact"]


def delete_run_artifact(client: Any, run_id: str, path: str) -> bool:
    """Delete ``path`` (a file or folder) from run ``run_id``'s artifacts; False, changing
    nothing, when the run's repository cannot delete (NotImplementedError). Other errors
    are raised (the caller decides whether they matter)."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repo = get_artifact_repository(client.get_run(run_id).info.artifact_uri)
    delete = getattr(repo, "delete_artifacts", None)
    if delete is None:
        return False
    try:
        delete(path)
    except NotImplementedError:
        return False
    return True

__all__ += ["parse_scoring_input"]


def parse_scoring_input(body: Union[bytes, dict], content_type: str, metadata: Any) -> Any:
    """The model input MLflow's scoring server parses from an ``/invocations`` body, as its
    ``invocations()`` does before ``model.predict`` (JSON, CSV or Parquet; ``metadata`` is
    the model's ``mlflow.models.Model``). The capture process re-parses a request's raw
    bytes with it, so its rows are the ones the model saw. A JSON body may also be given
    decoded (a dict: MLflow's ``_decode_json_input`` takes one as it is). Raises
    ``ValueError`` for a content type the server does not take (the server answered 415,
    nothing to capture); MLflow's own exceptions for a body it would reject."""
    from io import BytesIO, StringIO

    from mlflow.pyfunc import scoring_server

    mime = content_type.split(";", 1)[0].strip()
    schema = metadata.get_input_schema() if metadata is not None else None
    if mime == scoring_server.CONTENT_TYPE_JSON:
        return scoring_server._parse_json_data(body, metadata, schema).data
    if mime == scoring_server.CONTENT_TYPE_CSV:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        return scoring_server.parse_csv_input(csv_input=StringIO(text), schema=schema)
    if mime == scoring_server.CONTENT_TYPE_PARQUET:
        return scoring_server.parse_parquet_input(parquet_input=BytesIO(body))
    raise ValueError(f"content type {content_type!r} is not one the scoring server takes")
