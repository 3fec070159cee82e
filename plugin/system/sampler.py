"""SystemSampler: the one thread that samples every system monitor and feeds the pipeline."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from mlflow_monitor.system.base_monitor import BaseMonitor
from mlflow_monitor.system.cpu_monitor import CPUMonitor
from mlflow_monitor.system.disk_monitor import DiskMonitor
from mlflow_monitor.system.gpu_monitor import GPUMonitor, GPUUnavailable
from mlflow_monitor.system.network_monitor import NetworkMonitor
from mlflow_monitor.system.process_monitor import ProcessMonitor

_logger = logging.getLogger(__name__)


class MetricsSink(Protocol):
    """Where samples go: the metrics pipeline, or anything with the same method."""

    def append_many(
        self, run_id: str, metrics: dict[str, Any], step: int, ts_ms: int | None = None
    ) -> None: ...


def default_monitors(gpu: bool = True) -> list[BaseMonitor]:
    """CPU, process, disk and network monitors, plus GPUs when ``gpu`` and NVML has any.

    A monitor that cannot start is left out: logged at debug level for a missing GPU,
    as a warning otherwise.
    """
    factories: list[Any] = [CPUMonitor, ProcessMonitor, DiskMonitor, NetworkMonitor]
    monitors: list[BaseMonitor] = []
    for factory in factories:
        try:
            monitors.append(factory())
        except Exception:
            _logger.warning(
                "mlflow-monitor: %s failed to start; its metrics are skipped", factory.__name__, exc_info=True
            )
    if gpu:
        try:
            monitors.append(GPUMonitor())
        except GPUUnavailable as e:
            _logger.debug("mlflow-monitor: no GPU metrics: %s", e)
        except Exception:
            _logger.warning("mlflow-monitor: GPU monitor failed to start; no GPU metrics", exc_info=True)
    return monitors


class SystemSampler:
    """Samples system stats every ``interval_s`` on a daemon thread into ``sink``.

    Each sample is one ``sink.append_many(run_id, {prefix + name: value}, step=index)``.
    Monitors are created on the sampler thread (NVML start-up never touches the
    caller's thread). A monitor that raises is logged once and disabled; the others
    go on. ``stop()`` takes a final sample, closes the monitors and joins within
    ``stop_timeout_s``.

    ``prefix`` is ``"system/"``; with ``node_id`` it becomes ``"system/<node_id>/"``.
    ``monitors`` replaces :func:`default_monitors` (then ``gpu`` is ignored).
    """

    def __init__(
        self,
        run_id: str,
        interval_s: float = 1.0,
        prefix: str = "system/",
        sink: MetricsSink | None = None,
        gpu: bool = True,
        node_id: str | None = None,
        monitors: Sequence[BaseMonitor] | None = None,
        stop_timeout_s: float = 5.0,
    ) -> None:
        if not isinstance(run_id, str) or not run_id:
            raise ValueError(f"SystemSampler run_id must be a non-empty string, got {run_id!r}")
        if (
            isinstance(interval_s, bool)
            or not isinstance(interval_s, (int, float))
            or not (math.isfinite(interval_s) and interval_s > 0)
        ):
            raise ValueError(
                f"SystemSampler interval_s must be a positive number of seconds, got {interval_s!r}"
            )
        if not isinstance(stop_timeout_s, (int, float)) or not stop_timeout_s > 0:
            raise ValueError(
                f"SystemSampler stop_timeout_s must be a positive number, got {stop_timeout_s!r}"
            )
        if not isinstance(prefix, str):
            raise ValueError(f"SystemSampler prefix must be a string like 'system/', got {prefix!r}")
        if node_id is not None and (not isinstance(node_id, str) or not node_id or "/" in node_id):
            raise ValueError(f"SystemSampler node_id must be a non-empty string without '/', got {node_id!r}")
        if sink is not None and not callable(getattr(sink, "append_many", None)):
            raise ValueError(
                "SystemSampler sink must have an append_many(run_id, metrics, step, ts_ms=None) method, "
                f"got {type(sink).__name__}"
            )
        if monitors is not None:
            bad = [m for m in monitors if not isinstance(m, BaseMonitor)]
            if bad:
                raise ValueError(
                    f"SystemSampler monitors must be BaseMonitor instances, got {type(bad[0]).__name__}"
                )
        self.run_id = run_id
        self.interval_s = float(interval_s)
        self.prefix = f"{prefix.rstrip('/')}/{node_id}/" if node_id else prefix
        self._sink = sink
        self._gpu = gpu
        self._monitors: list[BaseMonitor] | None = list(monitors) if monitors is not None else None
        self._stop_timeout_s = stop_timeout_s
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._peaks: dict[str, float] = {}
        self._step = 0
        self._sink_failed = False

    @property
    def peaks(self) -> dict[str, float]:
        """Max of each metric seen so far, keyed by name without prefix (e.g. ``process_rss_megabytes``)."""
        with self._lock:
            return dict(self._peaks)

    def start(self) -> SystemSampler:
        """Start the sampling thread; a second call while running does nothing."""
        with self._lock:
            if self._stop_event.is_set():
                raise RuntimeError(f"SystemSampler for run {self.run_id} was stopped; create a new one")
            if self._thread is not None:
                return self
            if self._sink is None:
                from mlflow_monitor.metrics import get_pipeline

                self._sink = get_pipeline()
            self._thread = threading.Thread(
                target=self._run, name=f"mlflow-monitor-system-{self.run_id[:8]}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Take one last sample, close the monitors and join (bounded). Idempotent."""
        with self._lock:
            thread = self._thread
            self._stop_event.set()
        if thread is None or thread is threading.current_thread():
            return
        thread.join(self._stop_timeout_s)
        if thread.is_alive():
            _logger.warning(
                "mlflow-monitor: system sampler for run %s did not stop within %.1fs; leaving it to exit",
                self.run_id,
                self._stop_timeout_s,
            )

    def _run(self) -> None:
        try:
            if self._monitors is None:
                self._monitors = default_monitors(self._gpu)
            next_t = time.monotonic() + self.interval_s
            while not self._stop_event.wait(max(0.0, next_t - time.monotonic())):
                self._sample()
                next_t = max(next_t + self.interval_s, time.monotonic())
            self._sample()  # the final one, at stop()
        except Exception:  # never expected; the thread must not die noisily in training
            _logger.warning("mlflow-monitor: system sampler for run %s failed", self.run_id, exc_info=True)
        finally:
            for monitor in self._monitors or ():
                try:
                    monitor.close()
                except Exception:
                    _logger.debug("mlflow-monitor: closing %s failed", monitor.name, exc_info=True)

    def _sample(self) -> None:
        values: dict[str, float] = {}
        for monitor in list(self._monitors or ()):
            try:
                values.update(monitor.collect())
            except Exception as e:
                _logger.warning(
                    "mlflow-monitor: system monitor %r raised %s: %s; it is disabled for run %s",
                    monitor.name,
                    type(e).__name__,
                    e,
                    self.run_id,
                )
                self._monitors.remove(monitor)
                try:
                    monitor.close()
                except Exception:
                    pass
        if not values:
            return
        with self._lock:
            for key, value in values.items():
                if value == value and value > self._peaks.get(key, -math.inf):  # skip NaN
                    self._peaks[key] = value
        metrics = {self.prefix + k: v for k, v in values.items()}
        step, self._step = self._step, self._step + 1
        try:
            self._sink.append_many(self.run_id, metrics, step, int(time.time() * 1000))
        except Exception:
            level = logging.DEBUG if self._sink_failed else logging.WARNING
            self._sink_failed = True
            _logger.log(
                level,
                "mlflow-monitor: system metrics sink failed for run %s (step %d)",
                self.run_id,
                step,
                exc_info=True,
            )
