"""A small MLflow client whose calls never stall on MLflow's default HTTP retries.

:class:`BoundedClient` reads and writes run and model-version tags. For an http(s)
store each call is one REST request without client-side retries and with a short
timeout (:func:`mlflow_monitor.mlflow_compat.rest_call`); other stores (sqlite, file,
...) go through ``MlflowClient``. A failure that retrying may fix
(:func:`mlflow_monitor.retry.is_permanent` is False) raises :class:`StoreUnavailable` and
starts a cool-down for that store, during which calls raise at once; a permanent one (no
such run, a bad value) raises as it is.

:func:`store_uri_for_run` gives the tracking URI a run's metrics go to (its binding in
the metrics pipeline), so tags land next to the run's metrics.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Optional

from mlflow_monitor import mlflow_compat
from mlflow_monitor.redaction import redact, redact_uri
from mlflow_monitor.retry import Backoff, is_permanent

__all__ = ["COOLDOWN_S", "HTTP_TIMEOUT_S", "BoundedClient", "StoreUnavailable", "store_uri_for_run"]

HTTP_TIMEOUT_S = 5.0  # one request to an http(s) tracking server, no retries
COOLDOWN_S = 30.0  # after a store failed, skip it (fail at once) for this long


class StoreUnavailable(Exception):
    """The MLflow store did not answer (in time), or is cooling down after that: retry later."""

    def __init__(self, message: str, skipped: bool = False) -> None:
        super().__init__(message)
        self.skipped = skipped  # True: not even tried (cool-down)


def store_uri_for_run(run_id: str) -> str:
    """The tracking URI ``run_id`` is bound to in the metrics pipeline, else the current one."""
    # Imported here: the pipeline is optional for this client, and it is never started by it.
    from mlflow_monitor.metrics import pipeline as pipelines

    pipeline = pipelines.instance
    uri = pipeline.store_uri(run_id) if pipeline is not None else None
    if uri:
        return uri
    import mlflow

    return mlflow.get_tracking_uri()


def _http_base(uri: Optional[str]) -> Optional[str]:
    """The http(s) base URL behind ``uri`` (``monitor:`` registry URIs unwrapped), else None."""
    if not uri:
        return None
    inner = uri[len("monitor:"):] if uri.startswith("monitor:") else uri
    return inner if inner.startswith(("http://", "https://")) else None


def _registry_uri() -> str:
    import mlflow

    return mlflow.get_registry_uri()


class BoundedClient:
    """Run and model-version tag reads/writes, each one bounded call (see the module doc)."""

    def __init__(self, timeout_s: float = HTTP_TIMEOUT_S, cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._backoff: dict[str, Backoff] = {}  # per store URI: a fixed cool-down after a failure
        self._lock = threading.Lock()

    # ---- runs (tracking store) ---------------------------------------------------
    def run_tags(self, run_id: str, uri: Optional[str] = None) -> dict[str, str]:
        uri = uri or store_uri_for_run(run_id)
        base = _http_base(uri)
        if base:
            data = self._rest(uri, base, "/api/2.0/mlflow/runs/get", "GET", params={"run_id": run_id})
            return {t["key"]: t.get("value", "") for t in data.get("run", {}).get("data", {}).get("tags", [])}
        return self._local(uri, lambda c: dict(c.get_run(run_id).data.tags or {}), registry=False)

    def set_run_tag(self, run_id: str, key: str, value: str, uri: Optional[str] = None) -> None:
        uri = uri or store_uri_for_run(run_id)
        base = _http_base(uri)
        if base:
            self._rest(uri, base, "/api/2.0/mlflow/runs/set-tag", "POST",
                       json={"run_id": run_id, "run_uuid": run_id, "key": key, "value": value})
            return
        self._local(uri, lambda c: c.set_tag(run_id, key, value), registry=False)

    # ---- model versions (registry store) ----------------------------------------
    def model_version_tags(self, name: str, version: str, uri: Optional[str] = None) -> dict[str, str]:
        uri = uri or _registry_uri()
        base = _http_base(uri)
        if base:
            data = self._rest(uri, base, "/api/2.0/mlflow/model-versions/get", "GET",
                              params={"name": name, "version": version})
            return {t["key"]: t.get("value", "") for t in data.get("model_version", {}).get("tags", [])}
        return self._local(uri, lambda c: dict(c.get_model_version(name, version).tags or {}), registry=True)

    def set_model_version_tag(self, name: str, version: str, key: str, value: str,
                              uri: Optional[str] = None) -> None:
        uri = uri or _registry_uri()
        base = _http_base(uri)
        if base:
            self._rest(uri, base, "/api/2.0/mlflow/model-versions/set-tag", "POST",
                       json={"name": name, "version": str(version), "key": key, "value": value})
            return
        self._local(uri, lambda c: c.set_model_version_tag(name, version, key, value), registry=True)

    # ---- plumbing ----------------------------------------------------------------
    def available(self, uri: str) -> bool:
        """False while ``uri`` is cooling down after a failure."""
        with self._lock:
            backoff = self._backoff.get(uri)
            return backoff is None or backoff.ready()

    def _rest(self, uri: str, base: str, endpoint: str, method: str, **kwargs: Any) -> dict[str, Any]:
        return self._bounded(uri, lambda: mlflow_compat.rest_call(base, endpoint, method, self.timeout_s, **kwargs))

    def _local(self, uri: str, call: Callable[[Any], Any], registry: bool) -> Any:
        from mlflow.tracking import MlflowClient

        def run() -> Any:
            return call(MlflowClient(registry_uri=uri) if registry else MlflowClient(tracking_uri=uri))

        return self._bounded(uri, run)

    def _bounded(self, uri: str, call: Callable[[], Any]) -> Any:
        """Run ``call`` unless ``uri`` is cooling down; a transient failure starts a cool-down."""
        if not self.available(uri):
            raise StoreUnavailable(f"{redact_uri(uri)} failed recently; not retried for up to "
                                   f"{self.cooldown_s:.0f} s", skipped=True)
        try:
            result = call()
        except Exception as exc:
            if is_permanent(exc):  # the store answered: it is up, the request is refused
                self._up(uri)
                raise
            self._down(uri)
            raise StoreUnavailable(f"{redact_uri(uri)} unavailable: {type(exc).__name__}: {redact(exc)[:300]}") from None
        self._up(uri)
        return result

    def _down(self, uri: str) -> None:
        with self._lock:
            backoff = self._backoff.get(uri)
            if backoff is None:
                backoff = self._backoff[uri] = Backoff(self.cooldown_s, self.cooldown_s, clock=self._clock)
            backoff.failed()

    def _up(self, uri: str) -> None:
        with self._lock:
            self._backoff.pop(uri, None)
