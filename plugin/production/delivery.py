"""The delivery thread of a :class:`~mlflow_monitor.production.capture.Capture`: closed
partials from the window spool to the monitoring run's artifacts, then (on a closer)
one merge pass. A failing store backs off (0.5 s doubling to 30 s); partials wait on
disk meanwhile, and serving never notices."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

from mlflow_monitor.production import layout
from mlflow_monitor.production.closer import WindowCloser
from mlflow_monitor.production.monitoring_run import monitoring_run_id
from mlflow_monitor.production.window_spool import PendingPartial, safe_name
from mlflow_monitor.redaction import redact
from mlflow_monitor.retry import Backoff
from mlflow_monitor.windows import WindowKey
from mlflow_monitor.windows.signing import evidence_key, log_signed_artifact

__all__ = ["Delivery"]

_logger = logging.getLogger(__name__)


class Delivery:
    """Sends partials (and merges windows when ``close_windows``) on its own thread."""

    def __init__(self, capture: Any, *, close_windows: bool, grace_s: Optional[float],
                 experiment_id: Optional[str], run_id: Optional[str], tick_s: float = 0.5) -> None:
        import mlflow

        self._capture = capture
        self._key = evidence_key()  # MLFLOW_MONITOR_EVIDENCE_KEY: partials signed (a bad key raises here)
        self._client = mlflow.MlflowClient(tracking_uri=capture.tracking_uri)
        self._run_id = run_id
        self._experiment_id = experiment_id
        self._backoff = Backoff(0.5, 30.0)
        self._tick = tick_s
        self.closer: Optional[WindowCloser] = None
        if close_windows:
            self.closer = WindowCloser(self._client, self.run_id, capture.model_name, capture.version,
                                       granularity_s=capture.granularity_s, grace_s=grace_s, clock=capture.clock)
        self._pass_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.delivered = 0
        self.failures = 0
        self.last_error: Optional[str] = None
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-capture-delivery", daemon=True)
        self._thread.start()

    # -- the monitoring run ----------------------------------------------------------------
    def run_id(self) -> str:
        if self._run_id is None:
            self._run_id = monitoring_run_id(self._client, self._capture.model_name, self._capture.version,
                                             self._experiment_id)
        return self._run_id

    # -- the loop -----------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._tick)
            self._wake.clear()
            if self._stop.is_set() or not self._backoff.ready():
                continue
            self._try_pass(force=False)

    def _try_pass(self, force: bool) -> bool:
        with self._pass_lock:
            try:
                self._deliver_pending()
                if self.closer is not None:
                    self.closer.run_once(force=force)
            except Exception as exc:  # store down, disk error, ...: try again after the backoff
                self.failures += 1
                self.last_error = redact(f"{type(exc).__name__}: {exc}")
                wait = self._backoff.failed()
                if self.failures == 1 or self.failures % 20 == 0:
                    _logger.warning("mlflow-monitor: delivering production windows of '%s' version %s failed "
                                    "(%s); they wait on disk, next try in %.1f s", self._capture.model_name,
                                    self._capture.version, self.last_error, wait)
                return False
            self._backoff.succeeded()
            return True

    def _deliver_pending(self) -> None:
        for partial in self._capture.spool.pending():
            try:
                meta = partial.meta()
                key = WindowKey.from_dict(meta["state"]["key"])
            except (OSError, ValueError, KeyError, TypeError) as exc:  # torn or foreign file: never retried
                self._capture.spool.reject(partial, redact(f"{type(exc).__name__}: {exc}"))
                continue
            self._upload(partial, meta, key)
            partial.remove()
            self.delivered += 1

    def _upload(self, partial: PendingPartial, meta: dict, key: WindowKey) -> None:
        name = f"{safe_name(str(meta['worker_id']))}__{int(meta['seq']):06d}"
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
            shutil.copyfile(partial.json_path, Path(tmp) / f"{name}.json")
            if partial.sample_path.exists():
                shutil.copyfile(partial.sample_path, Path(tmp) / f"{name}.parquet")
            # the sample first, the state second: the closer merges a partial only when both exist
            # (each file after its signature, when the evidence key is set)
            folder = layout.partial_folder(key)
            log_signed_artifact(self._client, self.run_id(), str(Path(tmp) / f"{name}.parquet"), folder, self._key)
            log_signed_artifact(self._client, self.run_id(), str(Path(tmp) / f"{name}.json"), folder, self._key)
        if self.closer is not None:
            self.closer.hint(key)

    # -- control ----------------------------------------------------------------------------------
    def drain(self, timeout_s: float, force: bool = False) -> bool:
        """Deliver (and merge) now, retrying until ``timeout_s``; True when nothing waits on disk."""
        deadline = time.monotonic() + timeout_s
        while True:
            ok = self._try_pass(force=force)
            if ok and self._capture.spool.count() == 0 and self._capture.aggregator.unwritten == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            self._capture.aggregator.step()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)
