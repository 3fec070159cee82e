"""The capture process of one ``mlflow-monitor serve`` worker.

The worker's request threads hand each answered request's raw body, content type,
predictions, latency, status and prediction ids to a
:class:`~mlflow_monitor.production.forwarder.CaptureForwarder`, which writes them here in
batches over a pipe (this process's stdin). This process parses every body again with
MLflow's own parser (:func:`mlflow_monitor.mlflow_compat.parse_scoring_input`: the rows
the model saw; the bodies of a batch together where they can be, see ``batch_parse``)
and feeds a :class:`~mlflow_monitor.production.capture.Capture`, whose aggregator and
delivery threads therefore never take the worker's GIL or CPU time.

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
import signal
import struct
import sys
from typing import Any, BinaryIO, Optional

from mlflow_monitor.production.records import ERROR
from mlflow_monitor.redaction import redact

__all__ = ["CLOSE_TIMEOUT_ENV", "encode_batch", "main", "read_batch"]

_logger = logging.getLogger(__name__)
_HEADER = struct.Struct("!Q")
CLOSE_TIMEOUT_ENV = "MLFLOW_MONITOR_CAPTURE_CLOSE_TIMEOUT"


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
    together where they can be (:func:`~mlflow_monitor.production.batch_parse.parse_bodies`)."""
    from mlflow_monitor.production.batch_parse import parse_bodies

    if batch.get("dropped"):
        capture.add_dropped(int(batch["dropped"]))
    records = batch["records"]
    parsed = iter(parse_bodies([(r[3], r[2]) for r in records if r[0] != ERROR], metadata))
    bad = 0
    for kind, ts, content_type, body, predictions, latency_ms, status, ids in records:
        if kind == ERROR:
            capture.record_error(status, latency_ms, timestamp=ts)
            continue
        inputs = next(parsed)
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
    return bad


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
    stream = sys.stdin.buffer
    while True:
        try:
            batch = read_batch(stream)
        except Exception as exc:  # a torn batch: what came before it is kept
            _logger.warning("mlflow-monitor: the capture process read a bad batch: %s", redact(str(exc)))
            batch = None
        if batch is None:
            break
        feed(capture, metadata, batch)
    ok = capture.close(float(os.environ.get(CLOSE_TIMEOUT_ENV, "15")))
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
