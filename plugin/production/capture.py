"""``Capture``: what a serving process calls per request; everything else runs behind it.

``record()`` on the request thread builds one tuple and does one ``deque.append``: no
I/O, no lock, no pandas, no model of ours. The aggregator thread (``aggregator.py``)
folds records into per-window state and closes windows by time into the window spool
on disk; the delivery thread (``delivery.py``) sends closed partials to the version's
monitoring run and, where this process is a closer, merges and logs the windows.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import random
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

from mlflow_monitor.production.aggregator import Aggregator
from mlflow_monitor.production.records import BATCH, ERROR, REQUEST
from mlflow_monitor.production.window_spool import WindowSpool, default_state_dir
from mlflow_monitor.windows import DEFAULT_SAMPLE_ROWS, parse_granularity, window_start

__all__ = ["DEFAULT_MAX_PENDING", "Capture", "new_prediction_ids", "prediction_ids_for", "row_count"]

_logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 200_000  # records buffered for the aggregator before new ones are dropped (counted)


# Generated ids: 128 random bits from a generator of this process, seeded from os.urandom
# and reseeded in a forked child. uuid.uuid4() reads os.urandom on every call (a syscall,
# several microseconds on a busy host); this is one getrandbits. A private generator, so
# a user's random.seed() cannot make two workers produce the same ids.
_ID_RANDOM = random.Random(os.urandom(32))
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _ID_RANDOM.seed(os.urandom(32)))


def prediction_ids_for(n: int, given: Optional[Sequence[str]]) -> list[str]:
    """The ids of a request's ``n`` rows: ``given`` (as text) when there are ``n`` of them,
    else ``ValueError``; generated ones when none are given."""
    if given is None:
        return new_prediction_ids(n)
    ids = [str(i) for i in given]
    if len(ids) != n:
        raise ValueError(f"got {len(ids)} prediction ids for {n} input rows; give one id per row")
    return ids


def new_prediction_ids(rows: int) -> list[str]:
    """Ids for ``rows`` rows: 32 random hex digits, suffixed ``-<row>`` when there are several."""
    base = f"{_ID_RANDOM.getrandbits(128):032x}"
    return [base] if rows == 1 else [f"{base}-{i}" for i in range(rows)]


def row_count(inputs: Any) -> int:
    """Row count of ``inputs`` without building a frame (request thread)."""
    if isinstance(inputs, dict):
        first: Any = next(iter(inputs.values()), None)
        if hasattr(first, "__len__") and not isinstance(first, (str, bytes)):
            return len(first)
        return 1
    return len(inputs)  # DataFrame, list of rows, array (first axis)


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Capture:
    """Capture the traffic of one model version into time windows.

    ``window``: granularity, ``"1s"`` to ``"1d"``; ``sample``: the fraction of rows (by
    prediction id) whose values are kept (requests, rows, latency and errors are always
    counted in full); ``state_dir``: where closed windows wait for delivery (default
    ``$MLFLOW_MONITOR_HOME/production``); ``clock``: seconds since the epoch (tests
    inject one); ``worker_id``: this process's name in the merged windows (default
    host-pid-random, unique per process). ``close_windows``: this process also merges
    the windows of all workers and logs their metrics (a serving parent process does
    it for its workers; see ``docs/production.md``).
    """

    def __init__(self, model_name: str, version: Union[str, int], *, window: Union[str, int] = "5m",
                 sample: float = 1.0, tracking_uri: Optional[str] = None,
                 state_dir: Optional[Union[str, Path]] = None, clock: Callable[[], float] = time.time,
                 worker_id: Optional[str] = None, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                 max_pending: int = DEFAULT_MAX_PENDING, close_windows: bool = True,
                 grace_s: Optional[float] = None, experiment_id: Optional[str] = None,
                 run_id: Optional[str] = None, deliver: bool = True) -> None:
        if not isinstance(model_name, str) or not model_name.strip():
            raise ValueError(f"model_name must be a registered model's name, got {model_name!r}")
        if isinstance(version, bool) or not str(version).strip().isdigit():
            raise ValueError(f"version must be a model version number, got {version!r}")
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0.0 < float(sample) <= 1.0:
            raise ValueError(f"sample must be a fraction in (0, 1], got {sample!r}")
        if isinstance(sample_rows, bool) or not isinstance(sample_rows, int) or sample_rows < 1:
            raise ValueError(f"sample_rows must be a positive integer, got {sample_rows!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be a positive integer, got {max_pending!r}")
        self.model_name = model_name
        self.version = str(int(str(version).strip()))
        self.granularity_s = parse_granularity(window)
        self.sample = float(sample)
        self.worker_id = worker_id or _default_worker_id()
        self.tracking_uri = tracking_uri
        self.state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self._clock = clock
        self._max_pending = max_pending
        self._buffer: collections.deque = collections.deque()
        self._dropped = itertools.count()
        self._dropped_n = 0
        self._closed = False
        self._spool = WindowSpool(self.state_dir, model_name, self.version, self.worker_id)
        self._delivery: Any = None
        if deliver:
            from mlflow_monitor.production.delivery import Delivery

            self._delivery = Delivery(self, close_windows=close_windows, grace_s=grace_s,
                                      experiment_id=experiment_id, run_id=run_id)
        self._aggregator = Aggregator(
            self._buffer, self._spool, model_name=model_name, version=self.version,
            granularity_s=self.granularity_s, fraction=self.sample, sample_rows=sample_rows, clock=clock,
            worker_id=self.worker_id, dropped=lambda: self._dropped_n,
            on_closed=self._delivery.wake if self._delivery is not None else (lambda: None))
        self._flush_lock = threading.Lock()

    # -- the request thread ------------------------------------------------------------------
    def record(self, inputs: Any, predictions: Any, *, latency_ms: float, status: int = 200,
               prediction_ids: Optional[Sequence[str]] = None, timestamp: Optional[float] = None) -> list[str]:
        """Capture one request: its input rows, predictions and latency. Returns the
        prediction ids (given ones, else generated). One ``deque.append``; never does I/O.

        Raises ``ValueError`` only for an id count that differs from the row count.
        """
        n = row_count(inputs)
        ids = prediction_ids_for(n, prediction_ids)
        ts = self._clock() if timestamp is None else timestamp
        if len(self._buffer) >= self._max_pending or self._closed:
            self._dropped_n = next(self._dropped) + 1
            return ids
        self._buffer.append((REQUEST, ts, inputs, predictions, latency_ms, status, ids))
        return ids

    def record_error(self, status: int, latency_ms: float, timestamp: Optional[float] = None) -> None:
        """Capture a failed request (counted in ``prod/errors`` by status)."""
        ts = self._clock() if timestamp is None else timestamp
        if len(self._buffer) >= self._max_pending or self._closed:
            self._dropped_n = next(self._dropped) + 1
            return
        self._buffer.append((ERROR, ts, None, None, latency_ms, int(status), None))

    def record_parsed_batch(self, inputs: Any, predictions: Any, prediction_ids: Sequence[str],
                            requests: Sequence[tuple[float, float, int, int]]) -> bool:
        """Capture several served requests whose rows were parsed together (the capture
        process, one MLflow parse for a batch of bodies): ``inputs`` (a frame) and
        ``predictions`` (a 1-D array) hold every request's rows in order, and ``requests``
        is ``(timestamp, latency_ms, status, rows)`` a request, in the same order.

        The same window state as one :meth:`record` a request: each request is counted
        (requests, latency, errors), and the rows of each window go in as one record
        instead of one frame a request. All or nothing: when the buffer is full (or the
        capture closed) every request is dropped and counted, and False is returned.
        Raises ``ValueError`` before recording anything when the row counts do not add
        up or a timestamp is not a finite number.
        """
        total = sum(rows for _, _, _, rows in requests)
        if not (total == len(inputs) == len(predictions) == len(prediction_ids)):
            raise ValueError(f"{total} rows in the requests, {len(inputs)} input rows, {len(predictions)} "
                             f"predictions and {len(prediction_ids)} prediction ids: they must all be equal")
        windows: dict[int, tuple[float, list[int]]] = {}  # window start -> (first timestamp, row positions)
        pos = 0
        for ts, _, _, rows in requests:
            start = window_start(float(ts), self.granularity_s)
            windows.setdefault(start, (ts, []))[1].extend(range(pos, pos + rows))
            pos += rows
        if len(self._buffer) + len(requests) + len(windows) > self._max_pending or self._closed:
            for _ in requests:
                self._dropped_n = next(self._dropped) + 1
            return False
        for ts, latency_ms, status, _ in requests:
            self._buffer.append((REQUEST, ts, None, None, latency_ms, int(status), None))
        for first, positions in windows.values():
            if len(windows) == 1:
                x, y, ids = inputs, predictions, list(prediction_ids)
            else:
                x, y, ids = inputs.take(positions), predictions[positions], [prediction_ids[i] for i in positions]
            self._buffer.append((BATCH, first, x, y, 0.0, 200, ids))  # rows only: their requests are counted above
        return True

    def record_unparsed(self, latency_ms: float, status: int = 200, timestamp: Optional[float] = None) -> None:
        """Capture a served request whose rows could not be read back (the capture
        process failed to re-parse its body): counted in requests and latency, no rows."""
        ts = self._clock() if timestamp is None else timestamp
        if len(self._buffer) >= self._max_pending or self._closed:
            self._dropped_n = next(self._dropped) + 1
            return
        self._buffer.append((REQUEST, ts, None, None, latency_ms, int(status), None))

    def add_dropped(self, n: int) -> None:
        """Count ``n`` records dropped before they reached this capture (a serving
        worker's forwarder: its buffer was full or its capture process was gone)."""
        for _ in range(int(n)):
            self._dropped_n = next(self._dropped) + 1

    def record_batch(self, inputs: Any, predictions: Any, *, prediction_ids: Optional[Sequence[str]] = None,
                     timestamp: Optional[float] = None) -> list[str]:
        """Capture rows scored offline (no request, no latency): counted in ``prod/rows``.
        Raises ``RuntimeError`` after :meth:`close` (nothing would deliver them)."""
        if self._closed:
            raise RuntimeError(f"this Capture of '{self.model_name}' version {self.version} is closed")
        n = row_count(inputs)
        ids = new_prediction_ids(n) if prediction_ids is None else [str(i) for i in prediction_ids]
        if len(ids) != n:
            raise ValueError(f"got {len(ids)} prediction ids for {n} input rows; give one id per row")
        ts = self._clock() if timestamp is None else timestamp
        self._buffer.append((BATCH, ts, inputs, predictions, 0.0, 200, ids))
        return ids

    # -- control ---------------------------------------------------------------------------------
    def flush(self, timeout_s: float = 30.0, *, close_open: bool = False) -> bool:
        """Fold what is buffered, close due windows now (every open window with
        ``close_open``), and wait up to ``timeout_s`` for their delivery (and, on a
        closer, their merge). True when nothing is left waiting."""
        deadline = time.monotonic() + timeout_s
        with self._flush_lock:
            self._aggregator.step(close_all=close_open)
            if self._delivery is None:
                return self._aggregator.unwritten == 0
            return self._delivery.drain(max(0.0, deadline - time.monotonic()), force=close_open)

    def close(self, timeout_s: float = 30.0) -> bool:
        """Close every open window, deliver what can be delivered in ``timeout_s``, stop
        the threads. Windows not delivered stay on disk for the next process."""
        if self._closed:
            return True
        deadline = time.monotonic() + timeout_s
        ok = self.flush(timeout_s, close_open=True)
        self._closed = True  # from here record() drops (and counts) what it is given
        self._aggregator.stop(max(0.1, deadline - time.monotonic()))
        if self._buffer:  # records appended while the first flush ran
            ok = self.flush(max(0.0, deadline - time.monotonic()), close_open=True) and ok
        if self._delivery is not None:
            self._delivery.stop(max(0.1, deadline - time.monotonic()))
        self._spool.close()
        return ok

    # -- what the threads read ------------------------------------------------------------------------
    @property
    def spool(self) -> WindowSpool:
        return self._spool

    @property
    def aggregator(self) -> Aggregator:
        return self._aggregator

    @property
    def delivery(self) -> Any:
        return self._delivery

    @property
    def dropped(self) -> int:
        """Records dropped because the buffer was full (also counted in ``prod/dropped``)."""
        return self._dropped_n

    def clock(self) -> float:
        return self._clock()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
