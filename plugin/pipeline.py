"""The metrics pipeline: a hot-path buffer on the caller's thread, a background flusher
that batches into ``log_batch``, and an on-disk spool for when a store is down.

Training thread: :meth:`MetricsPipeline.append` is one ``deque.append`` of a tuple --
no I/O, no lock, no device sync (tensors stay tensors until the flusher reads them).

Flusher thread, every ``flush_interval_s`` or on demand:
  1. drain the buffer; turn tensors into floats (one stacked copy per device);
  2. tell observers (health rules, run stats) about each point;
  3. hand each store's points to its :class:`~mlflow_monitor.metric_destination.Destination`,
     which sends ``log_batch`` requests of at most 1000 metrics per run, in order, and on
     a transient failure (server down, network, database locked) spools them on disk and
     replays the spool, in order, with backoff, before any newer point of that store;
  4. points a store rejects outright (invalid key, deleted run) are isolated and written to
     ``rejected.jsonl`` with a warning naming it.

Memory is bounded: if the buffer grows past ``max_buffered_points`` while a store is
slow, the flusher spills it to the spool instead of holding it in RAM. At exit,
everything is flushed with a bounded wait; what is still undelivered stays in the spool
(replayed by the next process that starts a pipeline) and a warning names the file.
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

from mlflow.tracking import fluent as _fluent

from mlflow_monitor.metric_destination import Destination
from mlflow_monitor.paths import monitor_home
from mlflow_monitor.spool import Spool

_logger = logging.getLogger(__name__)

Observer = Callable[[str, str, float, int, int], None]

_DICT = None  # in the "key" slot: the value slot holds a dict of key -> value
_MARK = object()  # in the "key" slot: a flush marker; the value slot holds a threading.Event


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
        self._destinations: dict[str, Destination] = {}
        self._run_uris: dict[str, str] = {}
        self._unsent: list[tuple[str, list[tuple]]] = []  # points a failed cycle could not place
        self._wake = threading.Event()
        self._stop = False
        self._closed = False
        self._io_lock = threading.Lock()  # the flusher's cycle vs close()
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-flusher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hot path --
    def append(self, run_id: str, key: str, value: Any, step: int, ts_ms: Optional[int] = None) -> None:
        """Queue one point. ``value``: number or 0-dim tensor (read later, off-thread)."""
        self._push((run_id, key, value, step, _now() if ts_ms is None else int(ts_ms)))

    def append_many(self, run_id: str, metrics: Mapping[str, Any], step: int, ts_ms: Optional[int] = None) -> None:
        """Queue several points sharing one step and timestamp (the dict is copied)."""
        self._push((run_id, _DICT, dict(metrics), step, _now() if ts_ms is None else int(ts_ms)))

    # ------------------------------------------------------------------ control --
    def add_observer(self, fn: Observer) -> Callable[[], None]:
        """Call ``fn(run_id, key, value, step, ts_ms)`` for every point, on the flusher thread."""
        self._observers.append(fn)

        def _remove() -> None:
            if fn in self._observers:
                self._observers.remove(fn)

        return _remove

    def bind_run(self, run_id: str, tracking_uri: str) -> None:
        """Pin the store a run's points go to (default: the tracking URI when first seen)."""
        self._run_uris[run_id] = tracking_uri

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every point appended before this call is in its store.

        Returns False on timeout; points not delivered by then are safe in the spool.
        """
        if self._closed or not self._thread.is_alive():
            return not self._unsent and not self._own_backlog()
        deadline = time.monotonic() + timeout
        marker = threading.Event()
        self._push((None, _MARK, marker, 0, 0.0))  # FIFO: set once everything before it is handled
        self._wake.set()
        if not marker.wait(max(0.0, timeout)):
            return False
        while self._unsent or self._own_backlog():
            if time.monotonic() >= deadline:
                return False
            for dest in list(self._destinations.values()):
                dest.retry_now()
            self._wake.set()
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush with a bounded wait, then stop. Undelivered points stay in the spool."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=2.0)
        left: list[tuple[str, int]] = []
        if self._io_lock.acquire(timeout=2.0):
            try:
                self._closed = True
                self._place(self._drain(len(self._buffer) + 1), spill_only=True)
                for uri, points in self._unsent:
                    self._spill(uri, points)
                for dest in self._destinations.values():
                    left += dest.close()
            finally:
                self._io_lock.release()
        else:  # the flusher is stuck in a request: park what is left in fresh spool files
            self._closed = True
            left += self._park_without_lock()
        if left:
            _logger.warning(
                "mlflow-monitor: %d metric point(s) could not be delivered before exit; they are "
                "kept in %s and will be replayed by the next process that starts mlflow-monitor "
                "logging (or call mlflow_monitor.pipeline.replay_spools()).",
                sum(n for _, n in left), ", ".join(path for path, _ in left),
            )
        return ok and not left

    # ------------------------------------------------------------------ flusher --
    def _run(self) -> None:
        with self._io_lock:
            self._adopt_orphans()
        while not self._stop:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            with self._io_lock:
                if self._closed:
                    return
                try:
                    self._cycle()
                except Exception:  # never let the flusher die
                    _logger.exception("mlflow-monitor: metrics flusher cycle failed")

    def _cycle(self) -> None:
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            for uri, points in unsent:
                self._accept(uri, points)
        self._replay_due()
        # Take what is queued now, in big batches; points appended meanwhile wait for the
        # next cycle (chasing them would degrade into one tiny transaction per step).
        pending = len(self._buffer)
        while pending > 0 and not self._stop:
            entries = self._drain(min(pending, 50_000))
            pending -= len(entries)
            self._place(entries)
            self._replay_due()

    def _replay_due(self) -> None:
        for dest in list(self._destinations.values()):
            if dest.replay_due():
                try:
                    dest.replay(self._should_spill)
                except Exception:
                    _logger.exception("mlflow-monitor: replay to %s failed; retrying later", dest.uri)

    def _drain(self, limit: int) -> list[tuple]:
        buf = self._buffer
        pop = buf.popleft
        return [pop() for _ in range(min(len(buf), limit))]

    def _place(self, entries: list[tuple], spill_only: bool = False) -> None:
        """Deliver (or spool) drained entries in order; release flush markers as they pass."""
        segment: list[tuple] = []
        for entry in entries:
            if entry[1] is _MARK:
                self._place_segment(segment, spill_only)
                segment = []
                entry[2].set()
            else:
                segment.append(entry)
        self._place_segment(segment, spill_only)

    def _place_segment(self, entries: list[tuple], spill_only: bool) -> None:
        if not entries:
            return
        points = _materialize(entries)
        self._notify(points)
        for uri, uri_points in self._group(points):
            if spill_only:
                self._spill(uri, uri_points)
            else:
                self._accept(uri, uri_points)

    def _accept(self, uri: str, points: list[tuple]) -> None:
        try:
            self._destination(uri).accept(points, self._should_spill)
        except Exception:  # disk full, unexpected store error: keep the points, retry later
            _logger.exception("mlflow-monitor: could not deliver or spool %d point(s); retrying", len(points))
            self._unsent.append((uri, points))

    def _spill(self, uri: str, points: list[tuple]) -> None:
        try:
            self._destination(uri).spool_points(points)
        except Exception:
            _logger.exception("mlflow-monitor: could not spool %d point(s)", len(points))
            self._unsent.append((uri, points))

    def _should_spill(self) -> bool:
        return self._stop or len(self._buffer) > self.max_buffered_points

    def _park_without_lock(self) -> list[tuple[str, int]]:
        entries = [e for e in self._drain(len(self._buffer) + 1) if e[1] is not _MARK]
        left = []
        for uri, uri_points in self._group(_materialize(entries)):
            spool = Spool.create(uri)
            spool.append(uri_points)
            left.append((str(spool.path), len(uri_points)))
            spool.close()
        return left

    # ------------------------------------------------------------------ helpers --
    def _own_backlog(self) -> bool:
        return any(d.own_backlog() for d in list(self._destinations.values()))

    def _destination(self, uri: str) -> Destination:
        dest = self._destinations.get(uri)
        if dest is None:
            dest = self._destinations[uri] = Destination(
                uri, self._reject, self.request_timeout_s, self.max_retry_interval_s
            )
        return dest

    def _notify(self, points: list[tuple]) -> None:
        for fn in list(self._observers):
            try:
                for run_id, key, value, ts, step in points:
                    fn(run_id, key, value, step, ts)
            except Exception:
                _logger.exception("mlflow-monitor: metric observer %r failed; removing it", fn)
                if fn in self._observers:
                    self._observers.remove(fn)

    def _group(self, points: list[tuple]) -> list[tuple[str, list[tuple]]]:
        """Group points by tracking URI, keeping their order."""
        out: dict[str, list[tuple]] = {}
        for p in points:
            uri = self._run_uris.get(p[0])
            if uri is None:
                import mlflow

                uri = self._run_uris[p[0]] = mlflow.get_tracking_uri()
            out.setdefault(uri, []).append(p)
        return list(out.items())

    def _reject(self, points: list[tuple], exc: BaseException) -> None:
        path = monitor_home() / "rejected.jsonl"
        with open(path, "a") as fh:
            for p in points:
                fh.write(json.dumps({"point": list(p), "error": str(exc)[:500]}) + "\n")
        _logger.warning(
            "mlflow-monitor: the tracking store rejected %d point(s) of run %s (first: %r): %s; "
            "they are kept in %s",
            len(points), points[0][0], points[0][1], str(exc)[:200], path,
        )

    def _adopt_orphans(self) -> None:
        try:
            orphans = list(Spool.adopt_orphans())
        except Exception:
            _logger.exception("mlflow-monitor: could not scan the spool directory")
            return
        for spool in orphans:
            self._destination(spool.tracking_uri).orphans.append(spool)
        if orphans:
            _logger.info("mlflow-monitor: replaying %d spool file(s) left by an earlier process", len(orphans))

    def rescan_orphans(self) -> None:
        """Adopt spool files whose process has gone since this pipeline started."""
        with self._io_lock:
            self._adopt_orphans()
        self._wake.set()


def _materialize(entries: list[tuple]) -> list[tuple]:
    """Expand buffer entries to points ``(run_id, key, float, ts_ms, step)``.

    Tensors are read here, on the flusher thread: all tensors of one device are stacked
    and copied in one transfer, so a CUDA run costs one sync per flush, not one per point.
    """
    points: list[list] = []
    tensors: dict[Any, list[int]] = {}
    for run_id, key, value, step, ts in entries:
        ts_ms = int(ts * 1000) if type(ts) is float else ts  # float: seconds (internal), int: ms
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
        try:
            vals = [points[i][2].detach().reshape(()).float() for i in idxs]
            floats = torch.stack(vals).cpu().tolist()
        except Exception:  # a non-scalar or odd tensor: read each on its own, NaN if unreadable
            floats = [_tensor_float(points[i][2]) for i in idxs]
        for i, f in zip(idxs, floats):
            points[i][2] = f


def _tensor_float(value: Any) -> float:
    try:
        return float(value.detach().reshape(()).float().cpu())
    except Exception:
        _logger.warning("mlflow-monitor: metric value %r is not a scalar; logged as NaN", type(value).__name__)
        return math.nan


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
    pipe = get_pipeline()
    pipe.rescan_orphans()
    deadline = time.monotonic() + timeout
    ok = pipe.flush(timeout)
    while any(d.backlog() for d in list(pipe._destinations.values())):
        if time.monotonic() >= deadline:
            return False
        for d in list(pipe._destinations.values()):
            d.retry_now()
        pipe._wake.set()
        time.sleep(0.1)
    return ok


@atexit.register
def _close_at_exit() -> None:
    global _pipeline
    p, _pipeline = _pipeline, None
    if p is not None:
        p.close(float(os.environ.get("MLFLOW_MONITOR_EXIT_FLUSH_TIMEOUT_S", "10")))


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
    if step is None:
        step = current_step
    elif type(step) is not int:
        step = _check_step(step)
    if len(metrics) == 1:  # the common case: one flat tuple, no dict copy to keep alive
        for key, value in metrics.items():
            t = type(value)
            if key not in _known_keys or (t is not float and t is not int):
                _validate(metrics)
            (_pipeline or get_pipeline())._push((_active_run_id() or _start_run(), key, value, step, _now()))
        return
    if not _known_keys.issuperset(metrics):
        _validate(metrics)
    for value in metrics.values():
        t = type(value)
        if t is not float and t is not int:
            _validate(metrics)
            break
    (_pipeline or get_pipeline())._push((_active_run_id() or _start_run(), _DICT, metrics.copy(), step, _now()))


def flush(timeout: float = 10.0) -> bool:
    """Block until logged metrics are in the tracking store (True) or ``timeout`` passes."""
    return get_pipeline().flush(timeout)


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    return step.__index__()


def _validate(metrics: Mapping[str, Any]) -> None:
    """Check names (MLflow's rule) and values; raise before anything is queued."""
    from mlflow.utils.validation import _validate_metric_name

    for key, value in metrics.items():
        if key not in _known_keys:
            if not isinstance(key, str):
                raise TypeError(f"metric names must be str, got {type(key).__name__} ({key!r})")
            try:
                _validate_metric_name(key)
            except Exception as exc:
                raise ValueError(f"invalid metric name {key!r}: {exc}") from None
        _validate_value(key, value)
    _known_keys.update(metrics)


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
    run_id = top.info.run_id
    _run_cache = (top, run_id)
    _bind_current_uri(run_id)
    return run_id


def _bind_current_uri(run_id: str) -> None:
    """Pin a run to the tracking URI in force when it was first logged to (once per run)."""
    pipe = _pipeline or get_pipeline()
    if run_id not in pipe._run_uris:
        import mlflow

        pipe.bind_run(run_id, mlflow.get_tracking_uri())


def _start_run() -> str:
    import mlflow

    run_id = mlflow.start_run().info.run_id
    _bind_current_uri(run_id)
    return run_id
