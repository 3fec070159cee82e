"""One tracking store as the metrics flusher sees it: a sender, a spool, an outage state.

Each store (tracking URI) is independent: an outage or a stale spool of one store never
slows another. Points of one store are delivered in the order they were logged: while
a store has a backlog on disk (its own spool, or spools left by earlier processes for
the same URI), new points queue behind it on disk, and the backlog is replayed first.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator, Optional

from mlflow.protos.databricks_pb2 import INVALID_STATE, RESOURCE_DOES_NOT_EXIST, ErrorCode

from mlflow_monitor.metrics.point import MetricPoint
from mlflow_monitor.metrics.sender import MAX_METRICS_PER_BATCH, MetricSender
from mlflow_monitor.metrics.spool import Spool
from mlflow_monitor.paths import spool_dir
from mlflow_monitor.redaction import redact, redact_uri
from mlflow_monitor.retry import Backoff, is_permanent

__all__ = ["Destination", "Transient"]

_logger = logging.getLogger(__name__)

_RUN_LEVEL_CODES = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_STATE)}
FIRST_RETRY_S = 0.5  # the first wait after a store failed; doubled up to max_retry_interval_s


class Transient(Exception):
    """The store is unreachable; ``points`` (a suffix of what was sent) were not delivered."""

    def __init__(self, points: list[MetricPoint], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.points = points
        self.cause = cause


class Destination:
    """Delivery to one tracking URI, with its own spool and retry backoff."""

    def __init__(
        self,
        uri: str,
        reject: Callable[[list[MetricPoint], BaseException], None],
        timeout_s: float = 10.0,
        max_retry_interval_s: float = 10.0,
        writer_process: Optional[bool] = None,
    ) -> None:
        self.uri = uri
        self.sender = MetricSender(uri, timeout_s=timeout_s, writer_process=writer_process)
        self.spool: Optional[Spool] = None
        self.orphans: list[Spool] = []  # spools of earlier processes for this URI, oldest first
        self.outage = False
        self.max_retry_interval_s = max_retry_interval_s
        self._backoff = Backoff(FIRST_RETRY_S, max_retry_interval_s)
        self._reject = reject

    @property
    def embedded(self) -> bool:
        """Writes go to a local sqlite file, from this process or its writer process (see ``MetricSender.embedded``)."""
        return bool(getattr(self.sender, "embedded", False))

    # -- state -------------------------------------------------------------------------
    def own_backlog(self) -> bool:
        """Points this process spooled and has not delivered yet."""
        return self.spool is not None and self.spool.pending()

    def backlog(self) -> bool:
        return self.own_backlog() or any(s.pending() for s in self.orphans)

    def retry_now(self) -> None:
        self._backoff.retry_now()

    def replay_due(self) -> bool:
        return self.backlog() and self._backoff.ready()

    # -- delivery ---------------------------------------------------------------------
    def accept(self, points: list[MetricPoint], should_spill: Callable[[], bool]) -> None:
        """Deliver ``points`` in order, or park them on disk behind the backlog."""
        if self.backlog():
            self.spool_points(points)
            return
        runs = _group_runs(points)
        size = getattr(self.sender, "max_batch", MAX_METRICS_PER_BATCH)
        chunks = [(run_id, c) for run_id, rp in runs for c in _chunks(rp, size)]
        for i, (run_id, chunk) in enumerate(chunks):
            if should_spill():  # stopping, or the store is slower than training: keep RAM bounded
                self.spool_points([p for _, c in chunks[i:] for p in c])
                return
            try:
                self._send(run_id, chunk)
            except Transient as t:
                self._enter_outage(t.cause)
                self.spool_points(t.points + [p for _, c in chunks[i + 1 :] for p in c])
                return

    def replay(self, should_stop: Callable[[], bool]) -> None:
        """Send the backlog in order (orphans first); stop at the first transient failure."""
        for spool in list(self.orphans) + ([self.spool] if self.spool else []):
            while spool.pending():
                if should_stop():
                    return
                points, offsets = spool.read_run_batch(MAX_METRICS_PER_BATCH)
                if not points:
                    spool.commit(offsets[-1] if offsets else spool.read_offset)
                    break
                try:
                    self._send(points[0].run_id, points)
                except Transient as t:
                    done = len(points) - len(t.points)
                    if done:
                        spool.commit(offsets[done - 1])
                    self._enter_outage(t.cause)
                    return
                spool.commit(offsets[-1])
            if spool is not self.spool:
                spool.close()
                self.orphans.remove(spool)
        if self.outage:
            _logger.warning("mlflow-monitor: tracking store %s reachable again; spooled metrics replayed",
                            redact_uri(self.uri))
        self.outage = False
        self._backoff.succeeded()

    def spool_points(self, points: list[MetricPoint]) -> None:
        if not points:
            return
        if self.spool is None:
            self.spool = Spool.create(self.uri)
        self.spool.append(points)

    def close(self) -> list[tuple[str, int]]:
        """Close the spools; return (path, undelivered points) for each non-empty one."""
        left = []
        for spool in self.orphans + ([self.spool] if self.spool else []):
            if spool.pending():
                left.append((str(spool.path), spool.pending_points()))
            spool.close()
        close = getattr(self.sender, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                _logger.exception("mlflow-monitor: could not stop the metrics writer for %s", redact_uri(self.uri))
        return left

    # -- internals --------------------------------------------------------------------
    def _send(self, run_id: str, points: list[MetricPoint]) -> None:
        """Send one run's chunk; isolate points the store rejects outright (bisection).

        Raises :class:`Transient` with the undelivered suffix when the store is unreachable.
        """
        try:
            self.sender.send(run_id, points)
            return
        except Exception as exc:
            if not is_permanent(exc):
                raise Transient(points, exc) from None
            if len(points) == 1 or getattr(exc, "error_code", None) in _RUN_LEVEL_CODES:
                self._reject(points, exc)  # a deleted or missing run: the whole chunk at once
                return
        mid = len(points) // 2
        try:
            self._send(run_id, points[:mid])
        except Transient as t:
            raise Transient(t.points + points[mid:], t.cause) from None
        self._send(run_id, points[mid:])

    def _enter_outage(self, exc: BaseException) -> None:
        if not self.outage:
            self.outage = True
            _logger.warning(
                "mlflow-monitor: tracking store %s unavailable (%s: %s); spooling metrics to %s and "
                "retrying in the background",
                redact_uri(self.uri), type(exc).__name__, redact(exc)[:200], spool_dir(),
            )
        self._backoff.failed()


def _chunks(points: list[MetricPoint], size: int = MAX_METRICS_PER_BATCH) -> Iterator[list[MetricPoint]]:
    for i in range(0, len(points), size):
        yield points[i : i + size]


def _group_runs(points: list[MetricPoint]) -> list[tuple[str, list[MetricPoint]]]:
    """Group by run, keeping each run's order."""
    groups: dict[str, list[MetricPoint]] = {}
    last_run, append = None, None
    for p in points:
        if p[0] != last_run:  # points of one run come in long stretches: one lookup each
            last_run = p[0]
            append = groups.setdefault(last_run, []).append
        append(p)  # type: ignore[misc]
    return list(groups.items())
