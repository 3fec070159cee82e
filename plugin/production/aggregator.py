"""The aggregator thread: drains the capture buffer, folds records into per-window state,
and closes windows by time into the window spool (``window_spool.py``)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Callable, Deque, Optional

import numpy as np
import pandas as pd

from mlflow_monitor.production.records import BATCH, ERROR, CaptureRecord
from mlflow_monitor.production.window_spool import WindowSpool
from mlflow_monitor.redaction import redact
from mlflow_monitor.windows import (PREDICTION_COLUMN, WindowKey, WindowState, id_hashes, inputs_frame,
                                    predictions_frame, window_start)

__all__ = ["Aggregator"]

_logger = logging.getLogger(__name__)
MAX_UNWRITTEN = 10_000  # closed partials kept in memory while the disk refuses them
# The loop folds the buffer in slices of at most this many records and yields the GIL
# between slices and once inside each (time.sleep(0)), so a request thread of the same
# process waits about 1-2 ms at most for the interpreter (one-row requests, idle VM).
SLICE_RECORDS = 32


class Aggregator:
    """Folds the buffer into open windows; a window closes ``lateness_s`` after its end."""

    def __init__(self, buffer: Deque[tuple], spool: WindowSpool, *, model_name: str, version: str,
                 granularity_s: int, fraction: float, sample_rows: int, clock: Callable[[], float],
                 worker_id: str, dropped: Callable[[], int], on_closed: Callable[[], None],
                 tick_s: Optional[float] = None) -> None:
        self._buffer = buffer
        self._spool = spool
        self._model_name = model_name
        self._version = str(version)
        self._granularity = granularity_s
        self._fraction = fraction
        self._sample_rows = sample_rows
        self._clock = clock
        self._worker_id = worker_id
        self._dropped = dropped
        self._dropped_seen = 0
        self._on_closed = on_closed
        self.lateness_s = min(2.0, granularity_s / 2)
        # folding has a fixed cost per pass (the columns' statistics): a pass a second at
        # most keeps it off the request threads; short windows (tests) fold more often
        self._tick = tick_s if tick_s is not None else min(1.0, granularity_s / 5)
        self._columns_ok: set[tuple] = set()  # input column tuples already checked (str, unique)
        self._open: dict[WindowKey, WindowState] = {}
        self._seq: dict[WindowKey, int] = {}
        self._unwritten: Deque[tuple[WindowState, int]] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one fold/close at a time (thread loop vs flush())
        self.malformed = 0  # records whose predictions did not match their inputs
        self.write_failures = 0
        self._thread = threading.Thread(target=self._run, name="mlflow-monitor-capture-aggregator", daemon=True)
        self._thread.start()

    # -- the loop ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._tick)
            self._wake.clear()
            try:
                self._sliced_step()
            except Exception:  # never dies: the next tick tries again
                _logger.warning("mlflow-monitor: capture aggregation failed", exc_info=True)

    def _sliced_step(self) -> None:
        """The loop's pass: fold in slices of :data:`SLICE_RECORDS`, yielding the GIL
        between them, then close what is due."""
        while self._buffer and not self._stop.is_set():
            with self._lock:
                self._fold(SLICE_RECORDS)
            time.sleep(0)  # let a waiting request thread run
        with self._lock:
            self._fold()
            self._close(False)

    def step(self, *, close_all: bool = False) -> int:
        """Fold what is buffered and close due windows (every open one with ``close_all``);
        returns how many partials were closed."""
        with self._lock:
            self._fold()
            return self._close(close_all)

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    @property
    def open_windows(self) -> list[WindowKey]:
        return sorted(self._open)

    # -- folding ---------------------------------------------------------------------------
    def _key(self, ts: float) -> WindowKey:
        return WindowKey(self._model_name, self._version, window_start(ts, self._granularity), self._granularity)

    def _state(self, key: WindowKey) -> WindowState:
        state = self._open.get(key)
        if state is None:
            state = self._open[key] = WindowState(key, sample_rows=self._sample_rows)
        return state

    def _fold(self, limit: Optional[int] = None) -> None:
        groups: dict[WindowKey, list[CaptureRecord]] = {}
        buf = self._buffer
        taken = 0
        while limit is None or taken < limit:
            try:
                raw = buf.popleft()
            except IndexError:
                break
            taken += 1
            rec = CaptureRecord(*raw)
            try:
                key = self._key(float(rec.timestamp))
            except (TypeError, ValueError):
                self.malformed += 1
                _logger.warning("mlflow-monitor: skipped a captured record of '%s' version %s: its timestamp "
                                "%r is not a number of seconds since the epoch", self._model_name, self._version,
                                redact(repr(rec.timestamp)))
                continue
            groups.setdefault(key, []).append(rec)
        dropped = self._dropped()
        if dropped > self._dropped_seen:
            key = self._key(self._clock())
            self._state(key).dropped += dropped - self._dropped_seen
            self._dropped_seen = dropped
        for key, recs in groups.items():
            self._fold_window(self._state(key), recs)

    def _inputs(self, inputs: Any) -> pd.DataFrame:
        """``inputs_frame`` with its column check done once per distinct column tuple (the
        served model's requests all have the same columns)."""
        if isinstance(inputs, pd.DataFrame):
            cols = tuple(inputs.columns)
            if cols in self._columns_ok:
                return inputs
            frame = inputs_frame(inputs)
            if frame is inputs:
                self._columns_ok.add(cols)
            return frame
        return inputs_frame(inputs)

    def _fold_window(self, state: WindowState, recs: list[CaptureRecord]) -> None:
        inputs: list[pd.DataFrame] = []
        preds: list[Any] = []  # 1-D arrays (concatenated at once) or frames
        ids: list[str] = []
        for rec in recs:
            if rec.kind != BATCH:
                state.add_request(rec.latency_ms, rec.status, float(rec.timestamp))
            if rec.kind == ERROR or rec.inputs is None:
                continue
            try:
                x = self._inputs(rec.inputs)
                y = _prediction_vector(rec.predictions, len(x))
                if y is None:
                    y = predictions_frame(rec.predictions, len(x))
                if rec.ids is None or len(rec.ids) != len(x):
                    raise ValueError(f"{0 if rec.ids is None else len(rec.ids)} prediction ids for {len(x)} rows")
            except (TypeError, ValueError) as exc:
                self.malformed += 1
                _logger.warning("mlflow-monitor: skipped a captured request of '%s' version %s: %s",
                                self._model_name, self._version, redact(str(exc)))
                continue
            if rec.kind == BATCH:
                state.seen(float(rec.timestamp))
            inputs.append(x)
            preds.append(y)
            ids.extend(str(i) for i in rec.ids)
        if not ids:
            return
        try:
            x_all = inputs[0] if len(inputs) == 1 else pd.concat(inputs, ignore_index=True, sort=False)
            y_all = _predictions_block(preds)
            time.sleep(0)  # a second yield inside the slice: the GIL is held ~1 ms at a time
            state.add_rows(x_all.reset_index(drop=True), y_all.reset_index(drop=True), ids,
                           id_hashes(ids), self._fraction)
        except Exception as exc:  # a column pandas cannot fold: the requests still count, their rows do not
            self.malformed += len(inputs)
            state.rows += len(ids)
            _logger.warning("mlflow-monitor: could not fold %d captured rows of '%s' version %s into window %s "
                            "(counted in prod/rows, not in the column statistics): %s", len(ids),
                            self._model_name, self._version, state.key.window_id, redact(str(exc)))

    # -- closing ----------------------------------------------------------------------------
    def _close(self, close_all: bool) -> int:
        now = self._clock()
        due = [k for k in self._open if close_all or now >= k.end + self.lateness_s]
        for key in sorted(due):
            state = self._open.pop(key)
            seq = self._seq.get(key, 0)
            self._seq[key] = seq + 1
            self._unwritten.append((state, seq))
        closed = len(due)
        written = self._write_unwritten()
        if written:
            self._on_closed()
        self._forget_old(now)
        return closed

    def _write_unwritten(self) -> int:
        written = 0
        while self._unwritten:
            state, seq = self._unwritten[0]
            meta: dict[str, Any] = {"worker_id": self._worker_id, "seq": seq, "written": time.time()}
            try:
                self._spool.write(state, seq, meta)
            except OSError as exc:  # disk full, read-only: keep it in memory and try again later
                self.write_failures += 1
                if self.write_failures == 1 or self.write_failures % 100 == 0:
                    _logger.warning("mlflow-monitor: cannot write a closed window to %s (%s); kept in memory",
                                    self._spool.folder, redact(str(exc)))
                while len(self._unwritten) > MAX_UNWRITTEN:
                    lost, _ = self._unwritten.popleft()
                    _logger.warning("mlflow-monitor: dropped closed window %s: the disk refused it and "
                                    "%d are waiting in memory", lost.key.window_id, MAX_UNWRITTEN)
                break
            self._unwritten.popleft()
            written += 1
        return written

    def _forget_old(self, now: float) -> None:
        horizon = now - 2 * 86_400 - self._granularity
        for key in [k for k in self._seq if k.end < horizon]:
            del self._seq[key]

    @property
    def unwritten(self) -> int:
        return len(self._unwritten)


def _prediction_vector(predictions: Any, rows: int) -> Optional[np.ndarray]:
    """A 1-D array or Series of ``rows`` predictions as an array (what sklearn-like models
    answer), else None (``predictions_frame`` handles the rest, and the mismatches)."""
    if isinstance(predictions, np.ndarray) and predictions.ndim == 1 and predictions.dtype.kind != "O":
        arr = predictions
    elif isinstance(predictions, pd.Series) and predictions.dtype.kind in "biuf":
        arr = predictions.to_numpy()
    else:
        return None
    return arr if len(arr) == rows else None


def _predictions_block(preds: list[Any]) -> pd.DataFrame:
    """One frame of the records' predictions: runs of 1-D arrays are concatenated (one
    ``prediction`` column, as ``predictions_frame`` names it), frames are concatenated."""
    if all(isinstance(p, np.ndarray) for p in preds):
        return pd.DataFrame({PREDICTION_COLUMN: preds[0] if len(preds) == 1 else np.concatenate(preds)})
    frames = [pd.DataFrame({PREDICTION_COLUMN: p}) if isinstance(p, np.ndarray) else p for p in preds]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)
