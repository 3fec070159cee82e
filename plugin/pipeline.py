"""The metrics pipeline: a hot-path buffer on the caller's thread, a background flusher
that batches into ``log_batch``, and an on-disk spool for when the store is down.

Training thread: :meth:`MetricsPipeline.append` is one ``deque.append`` of a tuple --
no I/O, no lock, no device sync (tensors stay tensors until the flusher reads them).

Flusher thread, every ``flush_interval_s`` or on demand:
  1. drain the buffer; turn tensors into floats (one stacked copy per device);
  2. tell observers (health rules, run stats) about each point;
  3. send ``log_batch`` requests of at most 1000 metrics per run, in order;
  4. on a transient failure (server down, network, database locked) write the points to
     the spool and switch to *spool mode*: every later point goes to the spool behind
     them, and the spool is replayed, in order, with backoff until the store answers;
  5. points the store rejects outright (invalid key, deleted run) are isolated by
     bisection and written to ``rejected.jsonl`` with a warning naming it.

Memory is bounded: if the buffer grows past ``max_buffered_points`` while the store is
slow, the flusher spills it to the spool instead of holding it in RAM.
At exit, everything is flushed with a bounded wait; what is still undelivered stays in
the spool (replayed by the next process that starts a pipeline) and a warning names it.
"""

from __future__ import annotations

import atexit
import collections
import collections.abc
import json
import logging
import math
import os
import threading
import time
from typing import Any, Callable, Mapping, Optional

from mlflow.entities import Metric
from mlflow.tracking import fluent as _fluent

from mlflow_monitor.metric_sender import MAX_METRICS_PER_BATCH, MetricSender, is_permanent
from mlflow_monitor.paths import monitor_home
from mlflow_monitor.spool import Spool

_logger = logging.getLogger(__name__)

Observer = Callable[[str, str, float, int, int], None]

_DICT = None  # marker in the "key" slot: the value slot holds a dict of key -> value


class MetricsPipeline:
    """Non-blocking metric logging with batching, spooling and replay."""

    def __init__(
        self,
        flush_interval_s: float = 1.0,
        max_buffered_points: int = 200_000,
        request_timeout_s: float = 10.0,
        max_retry_interval_s: float = 10.0,
    ) -> None:
        self.flush_interval_s = flush_interval_s
        self.max_buffered_points = max_buffered_points
        self.request_timeout_s = request_timeout_s
        self.max_retry_interval_s = max_retry_interval_s
        self._buffer: collections.deque = collections.deque()
        self._push = self._buffer.append  # the hot path
        self._observers: list[Observer] = []
        self._senders: dict[str, MetricSender] = {}
        self._spools: dict[str, Spool] = {}  # tracking URI -> this process's spool
        self._orphans: list[Spool] = []  # spools left by earlier processes
        self._run_uris: dict[str, str] = {}
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._stop = False
        self._io_lock = threading.Lock()  # one delivery cycle at a time (flusher vs close)
        self._retry_at = 0.0
        self._retry_interval = 0.5
        self._outage = False
        self.delivered = 0  # points acknowledged by a store (for tests and benchmarks)
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-flusher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hot path --
    def append(self, run_id: str, key: str, value: Any, step: int, ts_ms: Optional[int] = None) -> None:
        """Queue one point. ``value``: number or 0-dim tensor (read later, off-thread)."""
        self._push((run_id, key, value, step, ts_ms if ts_ms is not None else _now()))

    def append_many(self, run_id: str, metrics: Mapping[str, Any], step: int, ts_ms: Optional[int] = None) -> None:
        """Queue several points sharing one step and timestamp (the dict is copied)."""
        self._push((run_id, _DICT, dict(metrics), step, ts_ms if ts_ms is not None else _now()))

    # ------------------------------------------------------------------ control --
    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(run_id, key, value, step, ts_ms)`` for every point, on the flusher thread."""
        self._observers.append(fn)

        def _remove() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return _remove

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every point appended so far is in a store; False on timeout.

        Points that cannot be delivered in time stay safe in the spool.
        """
        deadline = time.monotonic() + timeout
        while self._thread.is_alive():
            self._retry_at = 0.0  # try the store now, even in spool mode
            self._idle.clear()
            self._wake.set()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._idle.wait(remaining) and not self._buffer and not self._spooled():
                return True
            if self._spooled():  # store still down: retry shortly until the deadline
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return not self._buffer and not self._spooled()

    def close(self, timeout: float = 10.0) -> bool:
        """Flush with a bounded wait, then stop. Undelivered points stay in the spool."""
        if self._stop:
            return True
        ok = self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=max(1.0, self.request_timeout_s))
        with self._io_lock:
            if self._buffer:  # flusher stuck in a slow request: park the rest on disk
                self._spool_points(self._drain(len(self._buffer)))
            spools = list(self._spools.values()) + self._orphans
            left = [(s.path, s.pending_points()) for s in spools if s.pending()]
            for spool in spools:
                spool.close()
        if left:
            _logger.warning(
                "mlflow-monitor: %d metric point(s) could not be delivered before exit; they are "
                "kept in %s and will be replayed by the next process that starts mlflow-monitor "
                "logging (or call mlflow_monitor.pipeline.replay_spools()).",
                sum(n for _, n in left), ", ".join(str(path) for path, _ in left),
            )
        return ok and not left

    # ------------------------------------------------------------------ flusher --
    def _run(self) -> None:
        self._adopt_orphans()
        while not self._stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            with self._io_lock:
                try:
                    self._cycle()
                except Exception:  # never let the flusher die
                    _logger.exception("mlflow-monitor: metrics flusher cycle failed")
            if not self._buffer:
                self._idle.set()

    def _cycle(self) -> None:
        if self._spooled() and time.monotonic() >= self._retry_at:
            self._replay()
        while self._buffer and not self._stop:
            points = self._drain()
            if self._spooled():
                self._spool_points(points)
                if time.monotonic() >= self._retry_at:
                    self._replay()
                continue
            self._deliver(points)

    def _drain(self, limit: int = 50_000) -> list[tuple]:
        """Pop up to ``limit`` buffer entries and expand them to points (floats)."""
        buf = self._buffer
        entries = []
        pop = buf.popleft
        n = min(len(buf), limit)
        for _ in range(n):
            entries.append(pop())
        return _materialize(entries)

    def _deliver(self, points: list[tuple]) -> None:
        self._notify(points)
        for uri, per_run in self._group(points).items():
            chunks = [(run_id, c) for run_id, run_points in per_run for c in _chunks(run_points)]
            for i, (run_id, chunk) in enumerate(chunks):
                if self._spooled() or len(self._buffer) > self.max_buffered_points:
                    # store down, or slower than training: park the rest on disk, in order,
                    # so RAM stays bounded and nothing is lost
                    self._spool_points([p for _, c in chunks[i:] for p in c], notify=False)
                    break
                try:
                    self._send(self._sender(uri), run_id, chunk)
                except Exception as exc:  # transient: store down, network, database locked
                    self._enter_spool_mode(exc)
                    self._spool_points([p for _, c in chunks[i:] for p in c], notify=False)
                    break

    def _send(self, sender: MetricSender, run_id: str, points: list[tuple]) -> None:
        """Send one chunk; isolate and park points the store rejects outright."""
        metrics = [Metric(p[1], p[2], p[3], p[4]) for p in points]
        try:
            sender.send(run_id, metrics)
            self.delivered += len(points)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            if len(points) == 1:
                self._reject(points, exc)
                return
            mid = len(points) // 2
            self._send(sender, run_id, points[:mid])
            self._send(sender, run_id, points[mid:])

    def _replay(self) -> None:
        """Send spooled points in order; stop at the first transient failure."""
        for spool in list(self._spools.values()) + list(self._orphans):
            sender = self._sender(spool.tracking_uri)
            while spool.pending():
                points, end = spool.read(MAX_METRICS_PER_BATCH)
                try:
                    for run_id, run_points in _group_runs(points):
                        self._send(sender, run_id, run_points)
                except Exception as exc:
                    self._enter_spool_mode(exc)
                    return
                spool.commit(end)
            if spool in self._orphans:
                spool.close()
                self._orphans.remove(spool)
        if self._outage:
            _logger.warning("mlflow-monitor: tracking store reachable again; spooled metrics replayed")
        self._outage = False
        self._retry_interval = 0.5

    # ------------------------------------------------------------------ helpers --
    def _spooled(self) -> bool:
        return any(s.pending() for s in self._spools.values()) or bool(self._orphans)

    def _enter_spool_mode(self, exc: BaseException) -> None:
        if not self._outage:
            self._outage = True
            _logger.warning(
                "mlflow-monitor: tracking store unavailable (%s: %s); spooling metrics to %s "
                "and retrying in the background",
                type(exc).__name__, str(exc)[:200], monitor_home() / "spool",
            )
        self._retry_at = time.monotonic() + self._retry_interval
        self._retry_interval = min(self._retry_interval * 2, self.max_retry_interval_s)

    def _spool_points(self, points: list[tuple], notify: bool = True) -> None:
        """Append points (run_id, key, value, ts_ms, step) to the spool of their store."""
        if not points:
            return
        if notify:
            self._notify(points)
        for uri, per_run in self._group(points).items():
            spool = self._spools.get(uri)
            if spool is None:
                spool = self._spools[uri] = Spool.create(uri)
            spool.append([p for _, run_points in per_run for p in run_points])

    def _notify(self, points: list[tuple]) -> None:
        if not self._observers:
            return
        for fn in list(self._observers):
            try:
                for run_id, key, value, ts, step in points:
                    fn(run_id, key, value, step, ts)
            except Exception:
                _logger.exception("mlflow-monitor: metric observer %r failed; removing it", fn)
                self._observers.remove(fn)

    def _group(self, points: list[tuple]) -> dict[str, list[tuple[str, list[tuple]]]]:
        """Group points by tracking URI, then by run (keeping order within a run)."""
        out: dict[str, list[tuple[str, list[tuple]]]] = {}
        for run_id, run_points in _group_runs(points):
            uri = self._uri_for(run_id)
            out.setdefault(uri, []).append((run_id, run_points))
        return out

    def _uri_for(self, run_id: str) -> str:
        uri = self._run_uris.get(run_id)
        if uri is None:
            import mlflow

            uri = self._run_uris[run_id] = mlflow.get_tracking_uri()
        return uri

    def bind_run(self, run_id: str, tracking_uri: str) -> None:
        """Pin the store a run's points go to (default: the tracking URI when first seen)."""
        self._run_uris[run_id] = tracking_uri

    def _sender(self, uri: str) -> MetricSender:
        sender = self._senders.get(uri)
        if sender is None:
            sender = self._senders[uri] = MetricSender(uri, timeout_s=self.request_timeout_s)
        return sender

    def _reject(self, points: list[tuple], exc: BaseException) -> None:
        path = monitor_home() / "rejected.jsonl"
        with open(path, "a") as fh:
            for p in points:
                fh.write(json.dumps({"point": list(p), "error": str(exc)[:500]}) + "\n")
        _logger.warning(
            "mlflow-monitor: the tracking store rejected metric %r of run %s (%s); the point is "
            "kept in %s",
            points[0][1], points[0][0], str(exc)[:200], path,
        )

    def _adopt_orphans(self) -> None:
        try:
            self._orphans = list(Spool.adopt_orphans())
        except Exception:
            _logger.exception("mlflow-monitor: could not scan the spool directory")
            self._orphans = []
        if self._orphans:
            _logger.info("mlflow-monitor: replaying %d spool file(s) left by an earlier process", len(self._orphans))


def _count(spools: list[Spool]) -> int:
    return sum(s.pending_points() for s in spools)


def _chunks(points: list[tuple], size: int = MAX_METRICS_PER_BATCH):
    for i in range(0, len(points), size):
        yield points[i : i + size]


def _group_runs(points: list[tuple]) -> list[tuple[str, list[tuple]]]:
    groups: dict[str, list[tuple]] = {}
    for p in points:
        groups.setdefault(p[0], []).append(p)
    return list(groups.items())


def _materialize(entries: list[tuple]) -> list[tuple]:
    """Expand buffer entries to points ``(run_id, key, float, ts_ms, step)``.

    Tensors are read here, on the flusher thread: all tensors of one device are stacked
    and copied in one transfer, so a CUDA run costs one sync per flush, not one per point.
    """
    points: list[list] = []
    tensors: dict[Any, list[int]] = {}
    for run_id, key, value, step, ts in entries:
        ts_ms = int(ts * 1000) if isinstance(ts, float) else int(ts)
        step = int(step or 0)
        items = value.items() if key is _DICT else ((key, value),)
        for k, v in items:
            t = type(v)
            if t is not float and t is not int and hasattr(v, "detach"):
                tensors.setdefault(getattr(v, "device", None), []).append(len(points))
            points.append([run_id, k, v, ts_ms, step])
    if tensors:
        _read_tensors(points, tensors)
    for p in points:
        v = p[2]
        if type(v) is not float:
            try:
                p[2] = float(v)
            except (TypeError, ValueError):
                p[2] = math.nan
    return [tuple(p) for p in points]


def _read_tensors(points: list[list], by_device: dict[Any, list[int]]) -> None:
    import torch

    for idxs in by_device.values():
        vals = [points[i][2].detach().reshape(()).float() for i in idxs]
        try:
            floats = torch.stack(vals).cpu().tolist()
        except Exception:
            floats = [float(v) for v in vals]
        for i, f in zip(idxs, floats):
            points[i][2] = f


# ---------------------------------------------------------------------- module API --
_pipeline: Optional[MetricsPipeline] = None
_now = time.time
_pipeline_lock = threading.Lock()
_pid = os.getpid()


def get_pipeline() -> MetricsPipeline:
    """The process-wide pipeline, started on first use (a forked child gets its own)."""
    global _pipeline
    p = _pipeline
    if p is not None:
        return p
    with _pipeline_lock:
        if _pipeline is None:
            _pipeline = MetricsPipeline()
        return _pipeline


def _after_fork_in_child() -> None:
    global _pipeline, _pid, _run_cache
    _pipeline, _pid, _run_cache = None, os.getpid(), (None, None)


os.register_at_fork(after_in_child=_after_fork_in_child)


def reset_pipeline(timeout: float = 10.0) -> None:
    """Close the current pipeline (bounded flush) so the next use starts a fresh one."""
    global _pipeline
    with _pipeline_lock:
        p, _pipeline = _pipeline, None
    if p is not None:
        p.close(timeout)


def replay_spools(timeout: float = 30.0) -> bool:
    """Deliver spool files left by earlier processes now; True when all are delivered."""
    return get_pipeline().flush(timeout)


@atexit.register
def _close_at_exit() -> None:
    if _pipeline is not None:
        _pipeline.close(float(os.environ.get("MLFLOW_MONITOR_EXIT_FLUSH_TIMEOUT_S", "10")))


# ---------------------------------------------------------------------- public API --
current_step = 0  # integrations keep this at the optimizer step; log_metrics(step=None) uses it
_known_keys: set[str] = set()


def log_metrics(metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
    """Log ``{name: value}`` to the active run without blocking (the autolog pipeline).

    Values may be numbers or 0-dim tensors (read later, off the caller's thread).
    ``step`` defaults to the current optimizer step under autolog, else 0. Starts a run
    when none is active, like ``mlflow.log_metric``. Invalid names or values raise
    ``ValueError``/``TypeError`` here, and nothing is logged.
    """
    if type(metrics) is not dict:
        if not isinstance(metrics, collections.abc.Mapping):
            raise TypeError(f"log_metrics expects a mapping of name -> number, got {type(metrics).__name__}")
        metrics = dict(metrics)
    if not _known_keys.issuperset(metrics):
        _validate_keys(metrics)
    for value in metrics.values():
        t = type(value)
        if t is not float and t is not int:
            for key, v in metrics.items():
                _validate_value(key, v)
            break
    if step is None:
        step = current_step
    elif type(step) is not int:
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            raise TypeError(f"step must be an int, got {type(step).__name__}")
        step = step.__index__()
    run_id = _active_run_id() or _start_run()
    (_pipeline or get_pipeline())._push((run_id, _DICT, metrics.copy(), step, _now()))


def flush(timeout: float = 10.0) -> bool:
    """Block until logged metrics are in the tracking store (True) or ``timeout`` passes."""
    return get_pipeline().flush(timeout)


def _validate_keys(metrics: Mapping[str, Any]) -> None:
    from mlflow.utils.validation import _validate_metric_name

    for key in metrics:
        if not isinstance(key, str):
            raise TypeError(f"metric names must be str, got {type(key).__name__} ({key!r})")
        try:
            _validate_metric_name(key)
        except Exception as exc:
            raise ValueError(f"invalid metric name {key!r}: {exc}") from None
        _known_keys.add(key)


def _validate_value(key: str, value: Any) -> None:
    if isinstance(value, bool) or isinstance(value, (float, int)):
        return
    if hasattr(value, "detach"):  # torch tensor: must hold exactly one number
        if value.numel() != 1:
            raise ValueError(f"metric {key!r}: expected a scalar tensor, got shape {tuple(value.shape)}")
        return
    try:
        import numbers

        if isinstance(value, numbers.Real) or (hasattr(value, "item") and getattr(value, "size", 2) == 1):
            return
    except Exception:
        pass
    raise TypeError(f"metric {key!r}: expected a number, got {type(value).__name__} ({value!r:.60})")


_run_cache: tuple = (None, None)


def _active_run_id() -> Optional[str]:
    """The calling thread's active MLflow run id, cheaply (cached per ActiveRun object)."""
    global _run_cache
    try:
        stack, pid = _fluent._active_run_stack.thread_local.value
    except AttributeError:  # no run on this thread yet, or MLflow changed its internals
        import mlflow

        run = mlflow.active_run()
        return run.info.run_id if run else None
    if not stack or pid != _pid:
        return None
    top = stack[-1]
    cached = _run_cache
    if top is cached[0]:
        return cached[1]
    _run_cache = (top, top.info.run_id)
    return _run_cache[1]


def _start_run() -> str:
    import mlflow

    return mlflow.start_run().info.run_id
