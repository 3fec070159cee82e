"""``CaptureForwarder``: what an ``mlflow-monitor serve`` worker captures with.

The request thread does what :meth:`Capture.record` does (ids, one ``deque.append``),
but keeps the request's raw body instead of the parsed frame. A forwarder thread wakes
every :data:`TICK_S`, pickles what is buffered (bytes, numbers, the model's predictions)
and writes it in one batch to the worker's capture process
(``capture_process.py``), which parses, folds, spools and delivers. The worker thus pays
per request for the tuple, the append and a share of one pickle and one pipe write; the
folding that used to run on an aggregator thread of the worker (and hold its GIL) runs
in another process.

If the capture process dies, the forwarder starts a new one at the next batch (at most
every :data:`RESTART_AFTER_S`); records it could not hand over are counted as dropped
(``prod/dropped``) in the next process's window. Serving never waits on it: a full pipe blocks the forwarder thread, not a
request, and past ``max_pending`` buffered records new ones are dropped and counted.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import subprocess
import sys
import threading
import time
from typing import Any, Callable, NamedTuple, Optional, Sequence

from mlflow_monitor.production.capture import DEFAULT_MAX_PENDING, prediction_ids_for
from mlflow_monitor.production.capture_process import CLOSE_TIMEOUT_ENV, encode_batch
from mlflow_monitor.production.records import ERROR, REQUEST
from mlflow_monitor.redaction import redact

__all__ = ["TICK_S", "CaptureForwarder", "RawRequest"]

_logger = logging.getLogger(__name__)
TICK_S = 0.05  # how often buffered records are written to the capture process
MAX_BATCH = 2048  # records per pickle (bounds one write's size and the GIL it holds)
READY_TIMEOUT_S = 120.0  # the worker waits this long for its capture process at start (it imports MLflow)
RESTART_AFTER_S = 5.0  # a capture process that died is replaced at most this often
WRITE_TIMEOUT_S = 10.0  # a capture process that reads nothing for this long is stuck: it is killed


class RawRequest(NamedTuple):
    """An ``/invocations`` body as received, with its parsed row count."""

    content_type: str
    body: bytes
    rows: int


class CaptureForwarder:
    """The worker side of capture (see the module docstring). ``command`` starts the
    capture process (default: ``python -m mlflow_monitor.production.capture_process``
    with this process's environment); the constructor waits up to ``ready_timeout_s``
    for it to be ready, so a worker serves only once its capture process runs."""

    raw_inputs = True  # the middleware hands RawRequest inputs

    def __init__(self, *, max_pending: int = DEFAULT_MAX_PENDING, clock: Callable[[], float] = time.time,
                 command: Optional[list[str]] = None, close_timeout_s: float = 15.0,
                 ready_timeout_s: float = READY_TIMEOUT_S, restart_after_s: float = RESTART_AFTER_S) -> None:
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive integer, got {max_pending!r}")
        self._command = command or [sys.executable, "-m", "mlflow_monitor.production.capture_process"]
        self._clock = clock
        self._max_pending = max_pending
        self._close_timeout_s = close_timeout_s
        self._buffer: collections.deque = collections.deque()
        self._dropped_n = 0  # dropped here, not yet handed to a capture process
        self.dropped_total = 0
        self.restarts = -1
        self._closed = False
        self._proc: Optional[subprocess.Popen] = None
        self._lock = threading.Lock()  # one writer at a time (thread loop vs close())
        self._stop = threading.Event()
        self._next_start = 0.0
        self._restart_after_s = restart_after_s
        self._start_process(ready_timeout_s)
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-capture-forwarder", daemon=True)
        self._thread.start()

    # -- the request thread ------------------------------------------------------------------
    def record(self, inputs: Any, predictions: Any, *, latency_ms: float, status: int = 200,
               prediction_ids: Optional[Sequence[str]] = None, timestamp: Optional[float] = None) -> list[str]:
        """As :meth:`Capture.record`; ``inputs`` is a :class:`RawRequest`."""
        if not isinstance(inputs, RawRequest):
            raise TypeError(f"the forwarder takes a RawRequest as inputs, got {type(inputs).__name__}")
        n = inputs.rows
        ids = prediction_ids_for(n, prediction_ids)
        ts = self._clock() if timestamp is None else timestamp
        if len(self._buffer) >= self._max_pending or self._closed:
            self._drop(1)
            return ids
        self._buffer.append((REQUEST, ts, inputs.content_type, inputs.body, predictions, latency_ms, status, ids))
        return ids

    def record_error(self, status: int, latency_ms: float, timestamp: Optional[float] = None) -> None:
        """As :meth:`Capture.record_error`."""
        ts = self._clock() if timestamp is None else timestamp
        if len(self._buffer) >= self._max_pending or self._closed:
            self._drop(1)
            return
        self._buffer.append((ERROR, ts, None, None, None, latency_ms, int(status), None))

    def _drop(self, n: int) -> None:
        self._dropped_n += n
        self.dropped_total += n

    # -- the forwarder thread ---------------------------------------------------------------------
    def _start_process(self, wait_s: float = 0.0) -> None:
        """Start a capture process; wait up to ``wait_s`` for it to say it is ready (one
        byte on its stdout: it has imported MLflow and built its Capture)."""
        # the capture process closes its windows in a little less than the worker waits for it
        env = {**os.environ, CLOSE_TIMEOUT_ENV: repr(max(1.0, float(self._close_timeout_s) - 2.0))}
        self._next_start = time.monotonic() + self._restart_after_s
        self._proc = proc = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                             close_fds=True)
        self.restarts += 1
        assert proc.stdout is not None
        if wait_s > 0:
            ready, _, _ = select.select([proc.stdout], [], [], wait_s)
            if not ready or not proc.stdout.read(1):
                _logger.warning("mlflow-monitor: the capture process of pid %d was not ready in %.0f s (exit code "
                                "%s); serving goes on, its records wait", os.getpid(), wait_s, proc.poll())
        proc.stdout.close()

    def _run(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.send()
            except Exception:  # never dies: the next tick tries again
                _logger.warning("mlflow-monitor: capture forwarding failed", exc_info=True)

    def send(self, deadline: Optional[float] = None) -> int:
        """Write what is buffered to the capture process (each batch within ``deadline``,
        ``time.monotonic``, or :data:`WRITE_TIMEOUT_S`); returns the records written."""
        with self._lock:
            sent = 0
            buf = self._buffer
            while buf or self._dropped_n:
                batch: list[tuple] = []
                while buf and len(batch) < MAX_BATCH:
                    batch.append(buf.popleft())
                dropped, self._dropped_n = self._dropped_n, 0
                data, bad = _encode(batch, dropped)  # the batch's count of dropped records includes ``bad``
                self.dropped_total += bad
                if not self._write(data, deadline):  # all of it is dropped: counted in the next batch
                    self._dropped_n += len(batch) + dropped
                    self.dropped_total += len(batch) - bad
                    return sent
                sent += len(batch) - bad
            return sent

    def _write(self, blob: bytes, deadline: Optional[float] = None) -> bool:
        """Write one batch, within ``deadline`` (``time.monotonic``) or :data:`WRITE_TIMEOUT_S`."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            if self._closed or time.monotonic() < self._next_start:  # at most one start per restart_after_s
                return False
            _logger.warning("mlflow-monitor: the capture process of pid %d exited (%s); starting a new one",
                            os.getpid(), None if proc is None else proc.returncode)
            self._start_process()
            proc = self._proc
        assert proc is not None and proc.stdin is not None
        timeout = WRITE_TIMEOUT_S if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            if _write_within(proc.stdin.fileno(), blob, timeout):
                return True
        except (BrokenPipeError, OSError, ValueError) as exc:
            _logger.warning("mlflow-monitor: could not hand captured records to the capture process: %s",
                            redact(str(exc)))
            return False
        # stuck (reads nothing), or a frame half written: its stream cannot be resumed
        _logger.warning("mlflow-monitor: the capture process of pid %d read nothing for %.1f s; killing it "
                        "(a new one starts at the next batch)", os.getpid(), timeout)
        try:
            proc.kill()
        except OSError:
            pass
        return False

    # -- control ------------------------------------------------------------------------------------
    def close(self, timeout_s: float = 30.0) -> bool:
        """Hand over what is buffered, end the capture process's input and wait up to
        ``timeout_s`` for it to close and deliver its windows. True when it did."""
        if self._closed:
            return True
        deadline = time.monotonic() + timeout_s
        self._stop.set()
        self._thread.join(max(0.1, timeout_s / 2))
        self.send(deadline)
        self._closed = True  # from here record() drops (and counts) what it is given
        self.send(deadline)
        proc = self._proc
        if proc is None:
            return False
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass
        try:
            return proc.wait(max(0.1, deadline - time.monotonic())) == 0
        except subprocess.TimeoutExpired:
            _logger.warning("mlflow-monitor: the capture process did not finish in %.0f s; its windows wait "
                            "on disk for the next start", timeout_s)
            return False

    @property
    def dropped(self) -> int:
        """Records dropped here (buffer full, closed, or the capture process gone)."""
        return self.dropped_total

    @property
    def pid(self) -> Optional[int]:
        return None if self._proc is None else self._proc.pid


def _write_within(fd: int, data: bytes, timeout_s: float) -> bool:
    """Write all of ``data`` to the pipe ``fd`` (made non-blocking) within ``timeout_s``;
    False when the reader took too little of it in time."""
    os.set_blocking(fd, False)
    deadline = time.monotonic() + timeout_s
    view, offset = memoryview(data), 0
    while offset < len(view):
        try:
            offset += os.write(fd, view[offset:])
            continue
        except BlockingIOError:
            pass
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        select.select([], [fd], [], left)
    return True


def _encode(batch: list[tuple], dropped: int) -> tuple[bytes, int]:
    """The batch's bytes and how many of its records were left out: a record whose
    predictions cannot be pickled is dropped (and counted), not the whole batch."""
    try:
        return encode_batch(batch, dropped), 0
    except Exception:
        good = []
        for rec in batch:
            try:
                encode_batch([rec], 0)
                good.append(rec)
            except Exception:
                continue
        bad = len(batch) - len(good)
        _logger.warning("mlflow-monitor: %d captured predictions could not be pickled for the capture process; "
                        "counted as dropped", bad)
        return encode_batch(good, dropped + bad), bad
