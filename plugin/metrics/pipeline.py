"""The metrics pipeline: a hot-path buffer on the caller's thread, a background flusher
that batches into ``log_batch``, and an on-disk spool for when a store is down.

Training thread: :meth:`MetricsPipeline.append` is one ``deque.append`` of a buffer entry
(a point row or a point group, :mod:`mlflow_monitor.metrics.point`) -- no I/O, no lock,
no device sync (tensors stay tensors until the flusher reads them).

Flusher thread, every ``flush_interval_s`` or on demand:
  1. drain the buffer; turn entries into :class:`MetricPoint` with float values (one
     stacked copy per device, :mod:`~mlflow_monitor.metrics.materialize`);
  2. tell observers (health rules, run stats) about each point;
  3. hand each store's points to its :class:`~mlflow_monitor.metrics.destination.Destination`,
     which sends ``log_batch`` requests of at most 1000 metrics per run, in order, and on
     a transient failure (server down, network, database locked) spools them on disk and
     replays the spool, in order, with backoff, before any newer point of that store;
  4. one bad point stays alone: a point that cannot be stored (a value ``float()`` cannot
     hold such as ``10**400``, a step outside MLflow's int64 column such as ``2**70``; found
     while materialising) or that a store rejects outright (invalid key, deleted run;
     isolated by bisection) is written to ``rejected.jsonl`` with the reason, and a warning
     names it. It never blocks, spools or costs its neighbours.

While the flusher materialises and writes a batch to an embedded sqlite store, automatic
garbage collection is paused (:func:`gc_paused`): the batch's points would otherwise be
promoted to the oldest generation and set off full collections of the user's heap.

Memory is bounded: if the buffer grows past ``max_buffered_points`` while a store is
slow, the flusher spills it to the spool instead of holding it in RAM. At exit,
everything is flushed with a bounded wait; what is still undelivered stays in the spool
(replayed by the next process that starts a pipeline) and a warning names the file.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import gc
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from mlflow_monitor.metrics.destination import Destination
from mlflow_monitor.metrics.materialize import Rejected, materialize
from mlflow_monitor.metrics.point import FlushMarker, MetricPoint, PointGroup, PointRow
from mlflow_monitor.metrics.step_row import StepRow
from mlflow_monitor.metrics.spool import Spool
from mlflow_monitor.paths import monitor_home, open_private
from mlflow_monitor.redaction import redact, strip_credentials

__all__ = ["BatchObserver", "MetricsPipeline", "Observer", "gc_paused", "get_pipeline", "instance", "replay_spools", "reset_pipeline"]

_logger = logging.getLogger(__name__)

Observer = Callable[[MetricPoint], None]
BatchObserver = Callable[[list[MetricPoint]], None]  # one call per flush cycle's points
Entry = Union[PointRow, PointGroup, StepRow, FlushMarker]  # what the buffer holds
_time_ns = time.time_ns


class MetricsPipeline:
    """Non-blocking metric logging with batching, spooling and replay."""

    def __init__(
        self,
        flush_interval_s: float = 1.0,
        max_buffered_points: int = 200_000,
        request_timeout_s: float = 10.0,
        max_retry_interval_s: float = 10.0,
        writer_process: Optional[bool] = None,
    ) -> None:
        """``writer_process``: write embedded sqlite stores from a child process (None: the
        ``MLFLOW_MONITOR_WRITER_PROCESS`` switch, on when unset; see ``writer_process``)."""
        from mlflow_monitor.metrics.writer_process import writer_process_enabled

        self.writer_process = writer_process_enabled(writer_process)  # a bad switch fails here, not later
        self.flush_interval_s = flush_interval_s
        self.max_buffered_points = max_buffered_points
        self.request_timeout_s = request_timeout_s
        self.max_retry_interval_s = max_retry_interval_s
        self._buffer: collections.deque[Entry] = collections.deque()
        #: The hot path: queue one :data:`PointRow` or :data:`PointGroup` as it is
        #: (``deque.append``; the caller built it with the right types).
        self.push: Callable[[Entry], None] = self._buffer.append
        self._observers: list[Observer] = []
        self._batch_observers: list[BatchObserver] = []
        self._destinations: dict[str, Destination] = {}
        self._run_uris: dict[str, str] = {}
        self._unsent: list[tuple[str, list[MetricPoint]]] = []  # points a failed cycle could not place
        self._wake = threading.Event()
        self._stop = False
        self._closed = False
        self._io_lock = threading.Lock()  # the flusher's cycle vs close()
        self._warned_rejects: set[tuple[str, str]] = set()  # (run_id, key) already named in a warning
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-flusher", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hot path --
    def append(self, run_id: str, key: str, value: Any, step: int, ts_ms: Optional[int] = None) -> None:
        """Queue one point. ``value``: number or 0-dim tensor (read later, off-thread)."""
        self.push((run_id, key, value, step, _time_ns() // 1_000_000 if ts_ms is None else int(ts_ms)))

    def append_many(self, run_id: str, metrics: Mapping[str, Any], step: int, ts_ms: Optional[int] = None) -> None:
        """Queue several points sharing one step and timestamp (the dict is copied)."""
        self.push((run_id, dict(metrics), step, _time_ns() // 1_000_000 if ts_ms is None else int(ts_ms)))

    # ------------------------------------------------------------------ control --
    def add_observer(self, fn: Any, batch: bool = False) -> Callable[[], None]:
        """Call ``fn(point)`` with each :class:`MetricPoint` (float value), on the flusher thread;
        with ``batch=True``, ``fn(points)`` once per delivered list (one call, not one a point:
        observers on the per-step path cost ~0.5 us a point as per-point calls)."""
        observers: list = self._batch_observers if batch else self._observers
        observers.append(fn)

        def _remove() -> None:
            if fn in observers:
                observers.remove(fn)

        return _remove

    def bind_run(self, run_id: str, tracking_uri: str) -> None:
        """Pin the store a run's points go to (default: the tracking URI when first seen)."""
        self._run_uris[run_id] = tracking_uri

    def store_uri(self, run_id: str) -> Optional[str]:
        """The tracking URI ``run_id``'s points go to, or None while the run is not bound."""
        return self._run_uris.get(run_id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every point appended before this call is in its store.

        Returns False on timeout; points not delivered by then are safe in the spool.
        """
        if self._closed or not self._thread.is_alive():
            return not self._unsent and not self._own_backlog()
        deadline = time.monotonic() + timeout
        marker = threading.Event()
        self.push(FlushMarker(marker))  # FIFO: set once everything before it is handled
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
                "logging (or call mlflow_monitor.metrics.replay_spools()).",
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

    def _drain(self, limit: int) -> list[Entry]:
        buf = self._buffer
        pop = buf.popleft
        return [pop() for _ in range(min(len(buf), limit))]

    def _place(self, entries: list[Entry], spill_only: bool = False) -> None:
        """Deliver (or spool) drained entries in order; release flush markers as they pass."""
        segment: list[Union[PointRow, PointGroup, StepRow]] = []
        for entry in entries:
            if type(entry) is FlushMarker:
                self._place_segment(segment, spill_only)
                segment = []
                entry.event.set()
            else:
                segment.append(entry)  # type: ignore[arg-type]
        self._place_segment(segment, spill_only)

    def _place_segment(self, entries: list[Union[PointRow, PointGroup, StepRow]], spill_only: bool) -> None:
        if not entries:
            return
        dests = self._destinations
        if not spill_only and dests and all(d.embedded for d in list(dests.values())):
            with gc_paused():  # see gc_paused: the points of a cycle die young
                self._materialize_and_place(entries, spill_only)
        else:
            self._materialize_and_place(entries, spill_only)

    def _materialize_and_place(self, entries: list[Union[PointRow, PointGroup, StepRow]], spill_only: bool) -> None:
        rejected: list[Rejected] = []
        points = materialize(entries, rejected)
        if rejected:
            self._set_aside(rejected)
        self._notify(points)
        for uri, uri_points in self._group(points):
            if spill_only:
                self._spill(uri, uri_points)
            else:
                self._accept(uri, uri_points)

    def _accept(self, uri: str, points: list[MetricPoint]) -> None:
        try:
            self._destination(uri).accept(points, self._should_spill)
        except Exception:  # disk full, unexpected store error: keep the points, retry later
            _logger.exception("mlflow-monitor: could not deliver or spool %d point(s); retrying", len(points))
            self._unsent.append((uri, points))

    def _spill(self, uri: str, points: list[MetricPoint]) -> None:
        try:
            self._destination(uri).spool_points(points)
        except Exception:
            _logger.exception("mlflow-monitor: could not spool %d point(s)", len(points))
            self._unsent.append((uri, points))

    def _should_spill(self) -> bool:
        return self._stop or len(self._buffer) > self.max_buffered_points

    def _park_without_lock(self) -> list[tuple[str, int]]:
        entries = [e for e in self._drain(len(self._buffer) + 1) if type(e) is not FlushMarker]
        left = []
        rejected: list[Rejected] = []
        points = materialize(entries, rejected)  # type: ignore[arg-type]
        if rejected:
            self._set_aside(rejected)
        for uri, uri_points in self._group(points):
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
                uri, self._reject, self.request_timeout_s, self.max_retry_interval_s, self.writer_process
            )
        return dest

    def _notify(self, points: list[MetricPoint]) -> None:
        for batch_fn in list(self._batch_observers):
            try:
                batch_fn(points)
            except Exception:
                _logger.exception("mlflow-monitor: metric observer %r failed; removing it", batch_fn)
                if batch_fn in self._batch_observers:
                    self._batch_observers.remove(batch_fn)
        for fn in list(self._observers):
            try:
                for point in points:
                    fn(point)
            except Exception:
                _logger.exception("mlflow-monitor: metric observer %r failed; removing it", fn)
                if fn in self._observers:
                    self._observers.remove(fn)

    def _group(self, points: list[MetricPoint]) -> list[tuple[str, list[MetricPoint]]]:
        """Group points by tracking URI, keeping their order."""
        out: dict[str, list[MetricPoint]] = {}
        last_run, append = None, None
        for p in points:
            run_id = p[0]
            if run_id != last_run:  # points of one run come in long stretches: one lookup each
                uri = self._run_uris.get(run_id)
                if uri is None:
                    import mlflow

                    uri = self._run_uris[run_id] = mlflow.get_tracking_uri()
                append, last_run = out.setdefault(uri, []).append, run_id
            append(p)  # type: ignore[misc]
        return list(out.items())

    def _reject(self, points: list[MetricPoint], exc: BaseException) -> None:
        """A store refused ``points`` outright (the destination isolated them)."""
        reason = redact(exc)[:500]
        self._set_aside([(p, reason) for p in points], by_store=True)

    def _set_aside(self, rejected: list[Rejected], by_store: bool = False) -> None:
        """Write refused points to ``rejected.jsonl`` (mode 0600) with their reason; warn once per key."""
        path = monitor_home() / "rejected.jsonl"
        try:
            with open_private(path, "a", encoding="utf-8") as fh:
                for p, reason in rejected:
                    row = [p.run_id, p.key, _json_value(p.value), p.timestamp_ms, _json_value(p.step)]
                    fh.write(json.dumps({"point": row, "error": redact(reason)[:500]}) + "\n")
        except OSError as exc:
            _logger.warning("mlflow-monitor: could not write %s: %s", path, redact(exc))
        fresh = [(p, r) for p, r in rejected if (p.run_id, p.key) not in self._warned_rejects]
        if not fresh:
            return
        if len(self._warned_rejects) < 10_000:
            self._warned_rejects.update((p.run_id, p.key) for p, _ in fresh)
        first, reason = fresh[0]
        _logger.warning(
            "mlflow-monitor: %s %d metric point(s) of run %s (first: %r at step %s: %s); the other points "
            "are stored as usual, the refused ones are kept in %s",
            "the tracking store rejected" if by_store else "cannot store",
            len(rejected), first.run_id, first.key, _json_value(first.step), redact(reason)[:200], path,
        )

    def _adopt_orphans(self) -> None:
        try:
            orphans = list(Spool.adopt_orphans())
        except Exception:
            _logger.exception("mlflow-monitor: could not scan the spool directory")
            return
        for spool in orphans:
            spool.tracking_uri = self._with_known_credentials(spool.tracking_uri)
            self._destination(spool.tracking_uri).orphans.append(spool)
        if orphans:
            _logger.info("mlflow-monitor: replaying %d spool file(s) left by an earlier process", len(orphans))

    def _with_known_credentials(self, uri: str) -> str:
        """A spool header's URI (stored without ``user:password@``) as this process knows it.

        When this process uses the same store with credentials in its URI, that URI is
        used; otherwise the stored one (MLflow then takes credentials from
        ``MLFLOW_TRACKING_USERNAME``/``MLFLOW_TRACKING_PASSWORD`` or a token, as usual).
        """
        import mlflow

        candidates = [*self._destinations, *self._run_uris.values(), os.environ.get("MLFLOW_TRACKING_URI") or ""]
        try:
            candidates.append(mlflow.get_tracking_uri())
        except Exception:
            pass
        for known in candidates:
            if known and known != uri and strip_credentials(known) == uri:
                return known
        return uri

    def rescan_orphans(self) -> None:
        """Adopt spool files whose process has gone since this pipeline started."""
        with self._io_lock:
            self._adopt_orphans()
        self._wake.set()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic garbage collection while the flusher turns a batch into rows and writes
    it to an embedded sqlite store (tens of milliseconds; the automatic collector is left
    as it was when it was off already).

    A cycle's points are :class:`MetricPoint` s, tuples of a subclass the collector never
    untracks; a batch of them lives across a few young collections, is promoted to the
    oldest generation, and each ~25% growth of that generation sets off a full
    collection of the user's whole heap (~0.3-0.5 s with torch and MLflow loaded), about
    once per 100,000 points written. With collection paused they are freed by reference
    counting at the end of the write and are never promoted. Measured
    (``benchmarks/hot_path.py``): ~1.9 us of collection per stored point without the
    pause. Not used for remote stores, where a slow request would hold the pause.
    """
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _json_value(value: Any) -> Any:
    """``value`` as rejected.jsonl stores it: JSON numbers as they are, anything else as short text."""
    if isinstance(value, (bool, float)) or value is None:
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= 256 else f"an int of {value.bit_length()} bits"
    return f"{value!r:.80}"


# ---------------------------------------------------------------------- module API --
#: The process-wide pipeline, None until :func:`get_pipeline` starts it. Read it (the hot
#: path does: a function call would cost more than the rest of an append); never set it.
instance: Optional[MetricsPipeline] = None
_pipeline_lock = threading.Lock()


def get_pipeline() -> MetricsPipeline:
    """The process-wide pipeline, started on first use (a forked child gets its own)."""
    global instance
    p = instance
    if p is not None:
        return p
    with _pipeline_lock:
        if instance is None:
            instance = MetricsPipeline()
        return instance


def _after_fork_in_child() -> None:
    global instance
    instance = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def reset_pipeline(timeout: float = 10.0) -> None:
    """Close the current pipeline (bounded flush) so the next use starts a fresh one."""
    global instance
    with _pipeline_lock:
        p, instance = instance, None
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
    global instance
    p, instance = instance, None
    if p is not None:
        p.close(float(os.environ.get("MLFLOW_MONITOR_EXIT_FLUSH_TIMEOUT_S", "10")))
