"""The ``monitor:`` Model Registry store: gates promotions of any inner registry store.

``monitor:<inner-uri>`` wraps the store MLflow would build for ``<inner-uri>`` (sqlite,
postgresql, mysql, file, http(s), ...). Every call goes straight to the inner store
except three, which run the promotion gate first:

- ``set_registered_model_alias``   -> target ``alias:<alias>``
- ``transition_model_version_stage`` -> target ``stage:<stage>``
- ``create_model_version``          -> target ``new_version`` (advisory: evaluated and
  recorded after creation, never blocks, see ``docs/gate.md``)

The same builder serves the client (``mlflow.set_registry_uri``, ``MLFLOW_REGISTRY_URI``,
:func:`enable_gating`) and ``mlflow server --registry-store-uri monitor:...``, where a
blocked promotion becomes HTTP 400 (``BAD_REQUEST``).
"""

from __future__ import annotations

import inspect
import logging
import threading
from typing import Any, Optional

_logger = logging.getLogger(__name__)

SCHEME = "monitor"
_PREFIX = SCHEME + ":"

_gating_lock = threading.Lock()
_uri_before_gating: dict[str, Optional[str]] = {}


def inner_uri_of(store_uri: str) -> str:
    """``monitor:sqlite:///x.db`` -> ``sqlite:///x.db``; raises on anything else."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if not store_uri or not store_uri.startswith(_PREFIX):
        raise MlflowException(
            f"registry URI must start with '{_PREFIX}', got scheme "
            f"'{(store_uri or '').split(':', 1)[0]}'",
            error_code=INVALID_PARAMETER_VALUE,
        )
    inner = store_uri[len(_PREFIX):]
    if inner.startswith("//"):  # "monitor://sqlite:///x" is a common slip
        inner = inner[2:]
    if not inner or inner.startswith(_PREFIX):
        raise MlflowException(
            "registry URI 'monitor:<inner-uri>' needs an inner store URI that is not itself "
            "'monitor:', e.g. 'monitor:sqlite:///mlflow.db'",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return inner


def build_monitor_registry_store(store_uri: str, tracking_uri: Optional[str] = None):
    """Entry point ``mlflow.model_registry_store: monitor``.

    Resolves the inner store through the store registry's *builder*, never
    ``get_store()``: MLflow calls this while holding its non-reentrant store lock. Turns
    on the installed notifiers (entry-point group ``mlflow_monitor.notifiers``, e.g.
    Slack), so verdicts are announced wherever the store runs.
    """
    from mlflow_monitor.events import enable_notifiers
    from mlflow_monitor.mlflow_compat import registry_store_builder

    inner_uri = inner_uri_of(store_uri)
    builder = registry_store_builder(inner_uri)
    params = set(inspect.signature(builder).parameters)
    if "tracking_uri" in params:
        inner = builder(store_uri=inner_uri, tracking_uri=tracking_uri)
    else:
        inner = builder(store_uri=inner_uri)
    enable_notifiers()  # never raises; a broken notifier is logged and skipped
    _read_proxied_artifacts_in_server()
    return MonitorRegistryStore(inner, inner_uri=inner_uri, tracking_uri=tracking_uri)


def _read_proxied_artifacts_in_server() -> None:
    """Inside ``mlflow server --serve-artifacts``, let server-side code read and write
    ``mlflow-artifacts:/`` URIs (run artifacts of the candidate: reference data, reports).

    MLflow resolves that scheme only against an HTTP tracking URI, which the server process
    does not have; the server's own handlers map it to ``--artifacts-destination``. We
    register the same mapping for the ``mlflow-artifacts`` scheme, once, only in a server
    process (its artifacts destination set). Clients are untouched.
    """
    from mlflow_monitor.mlflow_compat import register_artifact_repository, server_artifacts_destination

    if not server_artifacts_destination():
        return
    if not register_artifact_repository("mlflow-artifacts", _server_local_repo):
        _logger.warning("mlflow-monitor: this MLflow has no artifact repository registry to extend; "
                        "the gate cannot read mlflow-artifacts:/ URIs inside the server")


def _server_local_repo(artifact_uri: str, tracking_uri=None, registry_uri=None):
    """``mlflow-artifacts:/<path>`` -> the server's ``--artifacts-destination``/<path>."""
    import posixpath
    from urllib.parse import urlparse

    from mlflow_monitor.mlflow_compat import artifact_repository, server_artifacts_destination

    destination = server_artifacts_destination()
    if not destination:
        raise RuntimeError(f"cannot resolve {artifact_uri!r}: not inside an mlflow server "
                           "with --artifacts-destination")
    root = destination.rstrip("/")
    path = urlparse(artifact_uri).path.lstrip("/")
    return artifact_repository(posixpath.join(root, path) if path else root)


class MonitorRegistryStore:
    """Delegates to ``inner``; alias sets, stage transitions and new versions run the gate."""

    def __init__(self, inner: Any, *, inner_uri: str, tracking_uri: Optional[str]) -> None:
        from mlflow_monitor.gate.promotion import PromotionGate

        self._inner = inner
        self._gate = PromotionGate(inner, inner_uri=inner_uri, tracking_uri=tracking_uri)

    @property
    def inner(self) -> Any:
        """The wrapped store (what the gate uses for its own registry writes)."""
        return self._inner

    @property
    def gate(self):
        return self._gate

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on this class: plain pass-through.
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self) -> str:  # never print the inner URI: it may hold credentials
        return f"MonitorRegistryStore({type(self._inner).__name__})"

    # -- gated calls ----------------------------------------------------------------
    def set_registered_model_alias(self, name, alias, version):
        from mlflow_monitor.gate.decision import Target

        return self._gate.enforce(
            name, str(version), Target("alias", alias),
            lambda: self._inner.set_registered_model_alias(name, alias, version),
        )

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions=False):
        from mlflow_monitor.gate.decision import Target
        from mlflow_monitor.mlflow_compat import canonical_stage

        return self._gate.enforce(
            name, str(version), Target("stage", canonical_stage(stage)),
            lambda: self._inner.transition_model_version_stage(
                name, version, stage, archive_existing_versions
            ),
        )

    def create_model_version(
        self,
        name,
        source,
        run_id=None,
        tags=None,
        run_link=None,
        description=None,
        local_model_path=None,
        model_id=None,
    ):
        accepted = set(inspect.signature(self._inner.create_model_version).parameters)
        extra = {"local_model_path": local_model_path, "model_id": model_id}
        kwargs = {k: v for k, v in extra.items() if k in accepted}
        mv = self._inner.create_model_version(
            name, source, run_id, tags, run_link, description, **kwargs
        )
        self._gate.on_new_version(mv)
        return mv


def enable_gating(enable: bool = True) -> str:
    """Gate Model Registry promotions made from this process.

    Wraps the current registry URI in ``monitor:`` (idempotent); ``enable_gating(False)``
    restores the URI that was current before. Returns the registry URI now in effect.
    """
    import mlflow

    with _gating_lock:
        current = mlflow.get_registry_uri()
        if enable:
            if not current.startswith(_PREFIX):
                _uri_before_gating["uri"] = current
                mlflow.set_registry_uri(_PREFIX + current)
        elif current.startswith(_PREFIX):
            mlflow.set_registry_uri(_uri_before_gating.pop("uri", None) or inner_uri_of(current))
        return mlflow.get_registry_uri()


def disable_gating() -> str:
    """Same as ``enable_gating(False)``."""
    return enable_gating(False)
