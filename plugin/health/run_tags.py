"""Writes health tags on MLflow runs from a small background thread.

Tagging is I/O (and may hang while the tracking server is down), so the pipeline's
flusher only enqueues here; a bounded queue, one daemon thread, errors logged.

Each tag goes to the tracking URI the run is bound to in the metrics pipeline (else
the current one). Calls are bounded (:class:`BoundedMlflow`: one request, no retries,
a short timeout for http(s) stores, then a cool-down); a tag that could not be written
because the store is unavailable is kept (bounded) and retried on the next write, and
what is still unwritten at exit goes to ``$MLFLOW_MONITOR_HOME/dead_letter/health_tags.jsonl``.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlparse

_logger = logging.getLogger(__name__)

MAX_TAG_VALUE = 250
HTTP_TIMEOUT_S = 5.0  # one request to an http(s) tracking server, no retries
COOLDOWN_S = 30.0  # after a store failed, skip it (fail at once) for this long
MAX_PENDING = 100  # tags kept for a retry while their store is unavailable
DEAD_LETTER_FILE = "health_tags.jsonl"

# MLflow error codes that retrying will not fix (the run or model version is gone, a bad value).
_PERMANENT_CODES = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "INVALID_STATE",
                              "PERMISSION_DENIED", "UNAUTHENTICATED", "BAD_REQUEST", "NOT_FOUND"})


class StoreUnavailable(Exception):
    """The MLflow store did not answer (in time), or is cooling down after that: retry later."""

    def __init__(self, message: str, skipped: bool = False) -> None:
        super().__init__(message)
        self.skipped = skipped  # True: not even tried (cool-down)


def tracking_uri_for_run(run_id: str) -> str:
    """The tracking URI ``run_id`` is bound to in the metrics pipeline, else the current one."""
    mod = sys.modules.get("mlflow_monitor.pipeline")
    if mod is not None:
        try:
            pipeline = mod._pipeline if hasattr(mod, "_pipeline") else mod.get_pipeline()
            uri = getattr(pipeline, "_run_uris", {}).get(run_id) if pipeline is not None else None
            if uri:
                return str(uri)
        except Exception:  # the pipeline is optional here
            pass
    import mlflow

    return mlflow.get_tracking_uri()


def safe_uri(uri: Optional[str]) -> Optional[str]:
    """``uri`` without credentials (user:password@), for logs and files."""
    if not uri:
        return uri
    try:
        parsed = urlparse(uri)
        if parsed.password or parsed.username:
            return parsed._replace(netloc=parsed.hostname + (f":{parsed.port}" if parsed.port else "")).geturl()
    except ValueError:
        return "<unparsable uri>"
    return uri


def _http_base(uri: Optional[str]) -> Optional[str]:
    """The http(s) base URL behind ``uri`` (``monitor:`` registry URIs unwrapped), else None."""
    if not uri:
        return None
    inner = uri[len("monitor:"):] if uri.startswith("monitor:") else uri
    return inner if inner.startswith(("http://", "https://")) else None


class BoundedMlflow:
    """Run and model-version tag reads/writes that never stall on MLflow's default HTTP retries.

    http(s) stores: one REST request (``max_retries=0``, ``timeout_s``); other stores
    (sqlite, file, ...): ``MlflowClient``. A failure that retrying may fix raises
    :class:`StoreUnavailable` and puts that store in a ``cooldown_s`` cool-down during
    which calls raise at once; other failures (no such run, ...) raise as they are.
    """

    def __init__(self, timeout_s: float = HTTP_TIMEOUT_S, cooldown_s: float = COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._down_until: dict[str, float] = {}
        self._lock = threading.Lock()

    # ---- runs (tracking store) ---------------------------------------------------
    def run_tags(self, run_id: str, uri: Optional[str] = None) -> dict[str, str]:
        uri = uri or tracking_uri_for_run(run_id)
        base = _http_base(uri)
        if base:
            data = self._rest(uri, base, "/api/2.0/mlflow/runs/get", "GET", params={"run_id": run_id})
            return {t["key"]: t.get("value", "") for t in data.get("run", {}).get("data", {}).get("tags", [])}
        return self._local(uri, lambda c: dict(c.get_run(run_id).data.tags or {}), registry=False)

    def set_run_tag(self, run_id: str, key: str, value: str, uri: Optional[str] = None) -> None:
        uri = uri or tracking_uri_for_run(run_id)
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
        with self._lock:
            return self._clock() >= self._down_until.get(uri, 0.0)

    def _check(self, uri: str) -> None:
        if not self.available(uri):
            raise StoreUnavailable(f"{safe_uri(uri)} failed recently; not retried for up to "
                                   f"{self.cooldown_s:.0f} s", skipped=True)

    def _down(self, uri: str, why: object) -> StoreUnavailable:
        with self._lock:
            self._down_until[uri] = self._clock() + self.cooldown_s
        return StoreUnavailable(f"{safe_uri(uri)} unavailable: {why}")

    def _up(self, uri: str) -> None:
        with self._lock:
            self._down_until.pop(uri, None)

    def _rest(self, uri: str, base: str, endpoint: str, method: str, **kwargs: Any) -> dict[str, Any]:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        self._check(uri)
        try:
            resp = http_request(get_default_host_creds(base), endpoint, method, max_retries=0,
                                backoff_factor=0, timeout=self.timeout_s, **kwargs)
        except Exception as exc:  # connection refused, timeout, 5xx (raise_on_status): transient
            raise self._down(uri, f"{type(exc).__name__}: {str(exc)[:300]}") from None
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise self._down(uri, f"HTTP {resp.status_code}")
        self._up(uri)
        if resp.status_code != 200:
            from mlflow.exceptions import MlflowException

            raise MlflowException(f"{method} {endpoint} answered HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            return resp.json() or {}
        except ValueError:
            return {}

    def _local(self, uri: str, call: Callable[[Any], Any], registry: bool) -> Any:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        self._check(uri)
        try:
            client = MlflowClient(registry_uri=uri) if registry else MlflowClient(tracking_uri=uri)
            result = call(client)
        except MlflowException as exc:
            if exc.error_code in _PERMANENT_CODES:
                self._up(uri)
                raise
            raise self._down(uri, exc) from None
        except Exception as exc:
            raise self._down(uri, f"{type(exc).__name__}: {exc}") from None
        self._up(uri)
        return result


def _registry_uri() -> str:
    import mlflow

    return mlflow.get_registry_uri()


def dead_letter_path() -> Path:
    from mlflow_monitor import paths

    return paths.dead_letter_dir() / DEAD_LETTER_FILE


_Tag = tuple[str, str, str]  # (run_id, key, value)


class RunTagWriter:
    """``tag(run_id, key, value)`` never blocks or raises; ``flush``/``close`` are bounded.

    After ``close`` (at exit) a tag is written at once with one bounded call, since no
    thread is left to do it; what fails then goes to the dead-letter file.

    Tags whose store is unavailable are kept (at most ``max_pending``) and retried
    before the next write (and on ``flush``); what is left at ``close`` (or pushed out
    of the pending queue) is appended to the dead-letter file with a warning naming it.
    """

    def __init__(self, store: Optional[BoundedMlflow] = None, maxsize: int = 1000,
                 max_pending: int = MAX_PENDING, dead_letter: Optional[Path] = None) -> None:
        self.store = store or BoundedMlflow()
        self._maxsize = maxsize
        self._max_pending = max_pending
        self._dead_letter = dead_letter
        self._items: collections.deque[_Tag] = collections.deque()
        self._pending: collections.deque[_Tag] = collections.deque()
        self._retry = False
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._file_lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._outage_logged = False
        self._warned_file = False
        self.dropped = 0  # tags not written to MLflow (in the dead-letter file, or rejected by the store)

    @property
    def pending(self) -> list[_Tag]:
        with self._cond:
            return list(self._pending)

    def tag(self, run_id: str, key: str, value: str) -> None:
        item = (run_id, key, value[:MAX_TAG_VALUE])
        with self._cond:
            if not self._closed and len(self._items) < self._maxsize:
                self._items.append(item)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="mlflow-monitor-health-tags",
                                                    daemon=True)
                    self._thread.start()
                self._cond.notify_all()
                return
            closed = self._closed
        if closed:  # at exit, after close(): the pipeline's final flush fired a rule. One bounded try.
            self._write(item)
        else:
            self._to_dead_letter([item], "tag queue full")

    def flush(self, timeout: float = 5.0) -> bool:
        """Write what is queued and retry pending tags once; True when nothing is left unwritten."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._pending and self._thread is not None and not self._closed:
                self._retry = True
                self._cond.notify_all()
            while self._items or self._busy or self._retry:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
            return not self._pending

    def close(self, timeout: float = 5.0) -> None:
        """Flush (bounded); what is still unwritten goes to the dead-letter file."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            left = list(self._pending) + list(self._items)
            self._pending.clear()
            self._items.clear()
            self._cond.notify_all()
        if left:
            self._to_dead_letter(left, "not written before exit (tracking store unavailable)")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._retry and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                item = self._items.popleft() if self._items else None
                retry, self._retry = list(self._pending), False
                self._pending.clear()
                self._busy = True
            try:
                for old in retry:  # older values first: the newest value of a key wins
                    self._write(old)
                if item is not None:
                    self._write(item)
            except Exception:  # a bug guard: never kill the writer thread
                _logger.exception("mlflow-monitor: health tag writer failed")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _write(self, item: _Tag) -> None:
        run_id, key, value = item
        uri = tracking_uri_for_run(run_id)
        try:
            self.store.set_run_tag(run_id, key, value, uri)
        except StoreUnavailable as exc:
            self._park(item, exc)
            return
        except Exception as exc:  # the store refused it (no such run, ...): retrying will not help
            self.dropped += 1
            _logger.warning("mlflow-monitor: could not tag run %s with %s: %s", run_id, key, exc)
            return
        self._outage_logged = False

    def _park(self, item: _Tag, exc: StoreUnavailable) -> None:
        spill: list[_Tag] = []
        with self._cond:
            if self._closed:
                spill.append(item)
            else:
                self._pending.append(item)
                while len(self._pending) > self._max_pending:
                    spill.append(self._pending.popleft())
        if not self._outage_logged and not exc.skipped:
            self._outage_logged = True
            _logger.warning("mlflow-monitor: health tag %s for run %s not written yet (%s); retrying on the "
                            "next write", item[1], item[0], exc)
        if spill:
            self._to_dead_letter(spill, f"tracking store unavailable: {exc}")

    def _to_dead_letter(self, items: list[_Tag], reason: str) -> None:
        self.dropped += len(items)
        path = self._dead_letter or dead_letter_path()
        now = time.time()
        try:
            lines = "".join(json.dumps({"failed_at": now, "reason": reason[:500], "run_id": run_id, "key": key,
                                        "value": value, "tracking_uri": safe_uri(tracking_uri_for_run(run_id))},
                                       default=str) + "\n" for run_id, key, value in items)
            with self._file_lock:
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(lines)
        except Exception as exc:
            _logger.error("mlflow-monitor: %d health tag(s) lost (%s); could not write %s: %s",
                          len(items), reason, path, exc)
            return
        _logger.warning("mlflow-monitor: %d health tag(s) not written to MLflow (%s); kept in %s",
                        len(items), reason, path)
