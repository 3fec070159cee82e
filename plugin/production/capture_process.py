"""The capture process of one ``mlflow-monitor serve`` worker.

The worker's request threads hand each answered request's raw body, content type,
predictions, latency, status and prediction ids to a
:class:`~mlflow_monitor.production.forwarder.CaptureForwarder`, which writes them here in
batches over a pipe (this process's stdin). This process parses every body again with
MLflow's own parser (:func:`mlflow_monitor.mlflow_compat.parse_scoring_input`: the rows
the model saw; the bodies of a batch together where they can be, see ``batch_parse``)
and feeds a :class:`~mlflow_monitor.production.capture.Capture`, whose aggregator and
delivery threads therefore never take the worker's GIL or CPU time. Batches that arrive
within :func:`coalesce_seconds` of each other (0.5 s for 5-minute windows) are parsed and
recorded together: MLflow's parse and the fold have a fixed cost per call.

Once ready (MLflow imported, the Capture built), it writes one byte to stdout, which
the worker waits for before it serves. At end of input (the worker closed the pipe: it shut down, or it died) every open window
is closed and delivered, then the process exits. SIGINT and SIGTERM are ignored: the
worker decides when capture ends, so a Ctrl-C to the process group cannot cut the last
windows short.

Wire format: per batch, an 8-byte big-endian length, then a pickle (protocol 5) of
``{"records": [...], "dropped": n}``; a record is ``(kind, timestamp, content_type, body,
predictions, latency_ms, status, ids)`` with ``kind`` from ``records.py``.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any, BinaryIO, Optional

import numpy as np

from mlflow_monitor.production.records import ERROR
from mlflow_monitor.redaction import redact

__all__ = ["CLOSE_TIMEOUT_ENV", "coalesce_seconds", "coalesced_batches", "encode_batch", "feed", "main", "read_batch"]

_logger = logging.getLogger(__name__)
_HEADER = struct.Struct("!Q")
CLOSE_TIMEOUT_ENV = "MLFLOW_MONITOR_CAPTURE_CLOSE_TIMEOUT"
COALESCE_MAX_S = 0.5  # batches arriving within this long are parsed together (see coalesced_batches)
COALESCE_MAX_RECORDS = 4096  # and at most this many records in one parse


def encode_batch(records: list[tuple], dropped: int) -> bytes:
    """One batch as written to the pipe."""
    blob = pickle.dumps({"records": records, "dropped": dropped}, protocol=5)
    return _HEADER.pack(len(blob)) + blob


def _read_exact(stream: BinaryIO, n: int) -> Optional[bytes]:
    parts = []
    while n:
        chunk = stream.read(n)
        if not chunk:
            return None
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def read_batch(stream: BinaryIO) -> Optional[dict[str, Any]]:
    """The next batch, or None at end of input (a batch cut short counts as the end)."""
    head = _read_exact(stream, _HEADER.size)
    if head is None:
        return None
    blob = _read_exact(stream, _HEADER.unpack(head)[0])
    return None if blob is None else pickle.loads(blob)


def feed(capture: Any, metadata: Any, batch: dict[str, Any]) -> int:
    """Record one batch into ``capture``; returns how many bodies could not be parsed again
    (their requests are counted, their rows are not). The batch's bodies are parsed
    together where they can be (:func:`~mlflow_monitor.production.batch_parse.parse_batch`),
    and the rows parsed together are recorded together
    (:meth:`~mlflow_monitor.production.capture.Capture.record_parsed_batch`)."""
    from mlflow_monitor.production.batch_parse import parse_batch

    if batch.get("dropped"):
        capture.add_dropped(int(batch["dropped"]))
    records = batch["records"]
    served = [r for r in records if r[0] != ERROR]
    parsed, merged = parse_batch([(r[3], r[2]) for r in served], metadata)
    if merged is not None and not _record_merged(capture, [served[i] for i in merged.indexes], merged):
        start = 0  # predictions of another shape: each request's rows go in alone, as the aggregator checks them
        for i, n in zip(merged.indexes, merged.counts):
            parsed[i] = merged.frame.iloc[start:start + n]
            start += n
        merged = None
    done = set(merged.indexes) if merged is not None else set()
    bad = 0
    for j, (kind, ts, content_type, body, predictions, latency_ms, status, ids) in enumerate(served):
        if j in done:
            continue
        inputs = parsed[j]
        try:
            if isinstance(inputs, Exception):
                raise inputs
            capture.record(inputs, predictions, latency_ms=latency_ms, status=status, prediction_ids=ids,
                           timestamp=ts)
        except Exception as exc:  # the server parsed it; a failure here is ours: the request counts, its rows not
            capture.record_unparsed(latency_ms, status, timestamp=ts)
            bad += 1
            if bad == 1:
                _logger.warning("mlflow-monitor: the capture process could not re-parse a request: %s",
                                redact(f"{type(exc).__name__}: {exc}"))
    for kind, ts, _, _, _, latency_ms, status, _ in records:
        if kind == ERROR:
            capture.record_error(status, latency_ms, timestamp=ts)
    return bad


def _record_merged(capture: Any, recs: list[tuple], merged: Any) -> bool:
    """Record the requests parsed together in one call; False (nothing recorded) when a
    request's predictions are not a 1-D array of its row count or its ids do not match
    (the caller then records each request alone, where the aggregator checks and counts
    it), or when a timestamp is not a number."""
    preds: list[np.ndarray] = []
    ids: list[str] = []
    requests: list[tuple[float, float, int, int]] = []
    for rec, n in zip(recs, merged.counts):
        _, ts, _, _, y, latency_ms, status, rec_ids = rec
        if not (isinstance(y, np.ndarray) and y.ndim == 1 and y.dtype.kind != "O" and len(y) == n):
            return False
        if rec_ids is None or len(rec_ids) != n:
            return False
        preds.append(y)
        ids.extend(str(i) for i in rec_ids)
        requests.append((ts, latency_ms, status, n))
    try:
        capture.record_parsed_batch(merged.frame, np.concatenate(preds), ids, requests)
    except (TypeError, ValueError):
        return False
    return True  # recorded, or dropped and counted


def coalesce_seconds(lateness_s: float) -> float:
    """How long the capture process gathers batches before it parses them: a quarter of
    the windows' lateness, at most :data:`COALESCE_MAX_S` (so a record still reaches its
    window before the window closes)."""
    return min(COALESCE_MAX_S, lateness_s / 4)


def coalesced_batches(stream: BinaryIO, coalesce_s: float,
                      max_records: int = COALESCE_MAX_RECORDS) -> Iterator[dict[str, Any]]:
    """The batches read from ``stream`` (unbuffered), those arriving within ``coalesce_s``
    of the first unparsed one joined into one (up to ``max_records`` records): MLflow's
    parse has a fixed cost per call, so one parse of what arrived in 0.5 s costs far less
    per request than one a forwarder tick. Ends at end of input, or at a torn batch (what
    came before it is kept)."""
    fd = stream.fileno()
    pending: Optional[dict[str, Any]] = None
    deadline = 0.0
    while True:
        if pending is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or len(pending["records"]) >= max_records or not select.select([fd], [], [], wait)[0]:
                yield pending
                pending = None
                continue
        try:
            batch = read_batch(stream)
        except Exception as exc:  # a torn batch
            _logger.warning("mlflow-monitor: the capture process read a bad batch: %s", redact(str(exc)))
            batch = None
        if batch is None:
            if pending is not None:
                yield pending
            return
        if pending is None:
            pending = {"records": list(batch["records"]), "dropped": int(batch.get("dropped") or 0)}
            deadline = time.monotonic() + coalesce_s
        else:
            pending["records"].extend(batch["records"])
            pending["dropped"] += int(batch.get("dropped") or 0)


def main() -> int:
    """Run until end of stdin (see the module docstring). Configuration: the worker's
    ``MLFLOW_MONITOR_SERVE_*`` environment."""
    import mlflow

    from mlflow_monitor.production.server import capture_from_env

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    capture, model_path = capture_from_env(os.environ)
    metadata = mlflow.models.Model.load(model_path)
    try:
        os.write(1, b"R")  # ready: the worker starts serving
    except OSError:  # a replacement process: nobody waits for it
        pass
    os.dup2(2, 1)  # nobody reads stdout from here on: anything printed goes to stderr
    stream = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # unbuffered: select() sees all input
    for batch in coalesced_batches(stream, coalesce_seconds(capture.aggregator.lateness_s)):
        feed(capture, metadata, batch)
    ok = capture.close(float(os.environ.get(CLOSE_TIMEOUT_ENV, "15")))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
