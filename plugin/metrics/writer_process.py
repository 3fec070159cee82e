"""Embedded sqlite writes in a child process, off the training process's GIL.

The flusher thread of the training process hands each chunk of points to a child
process (``python -m mlflow_monitor.metrics.writer_process``) that runs the bulk
:class:`~mlflow_monitor.metrics.sql_writer.SqlMetricWriter` into the same sqlite file.
The parent pickles the chunk (plain tuples, C speed), writes it to the child's stdin and
waits on the child's stdout (GIL released) until the child acknowledges the commit. The
SQL work -- buckets, parameters, sqlite's inserts, ~6 us a point on the training
process before -- then costs the training process nothing but the hand-over.

The no-loss contract of the spool is the caller's (:class:`~.destination.Destination`),
unchanged: :meth:`SqlWriterProcess.write_points` returns only after the commit, and
raises otherwise.

- **A store error** in the child comes back as ``(permanent, error_code, type, text)``,
  the text redacted, and is raised here as an exception that
  :func:`mlflow_monitor.retry.is_permanent` classifies as it classified the child's
  (``MlflowException`` with the same error code, or ``ValueError`` / ``TypeError`` /
  ``OverflowError``; transient ones as :class:`WriterProcessError`), so bisection and
  ``rejected.jsonl`` work as with the in-process writer.
- **Child death or a stuck child** (no answer within ``timeout_s``): the unacknowledged
  chunk raises :class:`WriterProcessLost`, a transient error (the destination spools it
  and replays it; a chunk the child had committed before it died is ignored on replay by
  the writer's ``INSERT OR IGNORE``, so nothing is stored twice). The next write starts a
  new child; after :data:`MAX_RESTARTS` restarts, writes go in-process (one warning).
- **Start failure** (no Python, the child cannot import MLflow or open the store, no
  ``ready`` within ``start_timeout_s``): writes go in-process at once (one warning). A
  failed *restart* counts as a death (the chunk is spooled, the next write tries again).
- **Lifetime:** the child exits on end of its stdin, so it never outlives the training
  process (even a SIGKILLed one); it ignores SIGINT (Ctrl-C reaches the whole process
  group; the parent's exit flush still needs the child). A process forked from the
  training process (DataLoader workers) closes its copies of the pipes and gets its own
  pipeline and child if it logs. :meth:`SqlWriterProcess.close` ends the child (stdin
  closed, bounded wait, then SIGKILL).

The wire format: frames of a 4-byte big-endian length and a pickle. The first frame to
the child is the tracking URI (not on the command line, where ``ps`` shows it); the
child answers ``("ready", dialect)`` or ``("unavailable", reason)``. Then each request is
``(run_id, rows)`` and each answer ``None`` (committed) or the error tuple above.

Knob: ``MLFLOW_MONITOR_WRITER_PROCESS=0`` (or ``MetricsPipeline(writer_process=False)``)
keeps the writes in the training process. Not used on Windows (no ``select`` on pipes).
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import weakref
from typing import Any, Optional, Sequence

__all__ = ["ENV_WRITER_PROCESS", "MAX_RESTARTS", "SqlWriterProcess", "WriterProcessError", "WriterProcessLost",
           "writer_process_enabled"]

_logger = logging.getLogger(__name__)

ENV_WRITER_PROCESS = "MLFLOW_MONITOR_WRITER_PROCESS"
MAX_RESTARTS = 3  # child deaths tolerated before the writes go in-process
_HEADER = struct.Struct(">I")
_PICKLE = pickle.HIGHEST_PROTOCOL
_live: "weakref.WeakSet[SqlWriterProcess]" = weakref.WeakSet()


class WriterProcessLost(ConnectionError):
    """The writer process died, hung or could not be reached; the chunk was not acknowledged (transient)."""


class WriterProcessError(RuntimeError):
    """A transient store error in the writer process (a locked database, a full disk)."""


def writer_process_enabled(value: Optional[bool] = None) -> bool:
    """Whether embedded sqlite writes go to a writer process: ``value`` when given, else
    ``MLFLOW_MONITOR_WRITER_PROCESS`` (``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/
    ``off``; unset: on), never on Windows. A bad value raises ``ValueError`` naming it."""
    if os.name == "nt":
        return False
    if value is not None:
        if not isinstance(value, bool):
            raise TypeError(f"writer_process must be True, False or None, got {value!r}")
        return value
    raw = os.environ.get(ENV_WRITER_PROCESS)
    if raw is None or raw.strip() == "":
        return True
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{ENV_WRITER_PROCESS}={raw!r:.40} is not a switch: use 1/true/yes/on or 0/false/no/off")


class SqlWriterProcess:
    """The parent's handle on a writer process for one sqlite tracking URI.

    Same interface as :class:`~mlflow_monitor.metrics.sql_writer.SqlMetricWriter`
    (``write``, ``write_points``, ``dialect``). Not thread-safe: the flusher serialises calls.
    """

    dialect = "sqlite"

    def __init__(self, tracking_uri: str, in_process: Any, timeout_s: float = 30.0,
                 start_timeout_s: float = 120.0, python: Optional[str] = None) -> None:
        """``in_process``: the :class:`~.sql_writer.SqlMetricWriter` used if the child cannot be."""
        self.tracking_uri = tracking_uri
        self._in_process_writer = in_process
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.python = python or sys.executable
        self.restarts = 0
        self._ever_ready = False
        self._proc: Optional[subprocess.Popen] = None
        self._to_child = -1
        self._from_child = -1
        self._fallback: Any = None
        self._lock = threading.Lock()
        _live.add(self)

    # -- the writer interface ------------------------------------------------------------
    @property
    def in_process(self) -> bool:
        """True once writes have fallen back to this process."""
        return self._fallback is not None

    @property
    def pid(self) -> Optional[int]:
        """The child's pid while one runs."""
        return self._proc.pid if self._proc is not None else None

    def write(self, run_id: str, metrics: Sequence[Any]) -> None:
        """Write ``mlflow.entities.Metric`` objects of one run (same rows as ``log_batch``)."""
        self.write_points(run_id, [(run_id, m.key, float(m.value), int(m.step), int(m.timestamp)) for m in metrics])

    def write_points(self, run_id: str, points: Sequence[Any]) -> None:
        """Write points of one run (``(run_id, key, value, step, timestamp_ms)``, float values);
        returns once they are committed, raises otherwise (see the module doc)."""
        with self._lock:
            if self._fallback is None and self._proc is None:
                self._start()
            if self._fallback is not None:
                self._fallback.write_points(run_id, points)
                return
            payload = pickle.dumps((run_id, list(map(tuple, points))), _PICKLE)
            try:
                self._send_frame(payload)
                answer = self._read_frame(self.timeout_s)
            except WriterProcessLost:
                self._lost()
                raise
        if answer is not None:
            _raise_answer(answer)

    def close(self, timeout: float = 5.0) -> None:
        """End the child: close its stdin (it exits after the write in hand), wait, then kill."""
        with self._lock:
            self._stop_child(timeout)

    # -- lifecycle -----------------------------------------------------------------------
    def _start(self) -> None:
        try:
            self._proc = subprocess.Popen(
                [self.python, "-m", "mlflow_monitor.metrics.writer_process"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True,
            )
            self._to_child = self._proc.stdin.fileno()  # type: ignore[union-attr]
            self._from_child = self._proc.stdout.fileno()  # type: ignore[union-attr]
            os.set_blocking(self._to_child, False)
            self._send_frame(pickle.dumps(self.tracking_uri, _PICKLE))
            answer = self._read_frame(self.start_timeout_s)
            if not (isinstance(answer, tuple) and answer and answer[0] == "ready"):
                reason = answer[1] if isinstance(answer, tuple) and len(answer) > 1 else repr(answer)
                raise WriterProcessLost(f"the writer process is unavailable: {reason}")
        except (OSError, WriterProcessLost, pickle.UnpicklingError, EOFError) as exc:
            if not self._ever_ready:  # it never worked here: write in-process from now on
                self._stop_child(1.0)
                self._fall_back(f"it could not start ({type(exc).__name__}: {_redact(exc)[:200]})")
                return
            self._lost()  # a restart failed: the chunk waits in the spool for the next try
            raise WriterProcessLost(f"the writer process could not be restarted ({_redact(exc)[:200]})") from None
        self._ever_ready = True

    def _lost(self) -> None:
        """The child died or hung with a chunk in hand: end it; the next write starts another."""
        self._stop_child(1.0)
        self.restarts += 1
        if self.restarts > MAX_RESTARTS:
            self._fall_back(f"it died {self.restarts} times")

    def _fall_back(self, why: str) -> None:
        from mlflow_monitor.redaction import redact_uri

        self._fallback = self._in_process_writer
        _logger.warning("mlflow-monitor: the metrics writer process for %s is not used: %s; metrics are "
                        "written in the training process (set %s=0 to do so from the start)",
                        redact_uri(self.tracking_uri), why, ENV_WRITER_PROCESS)

    def _stop_child(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        self._to_child = self._from_child = -1
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5.0)

    def _disown(self) -> None:
        """In a forked copy of the training process: drop the pipes without touching the child."""
        proc, self._proc = self._proc, None
        self._to_child = self._from_child = -1
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()  # type: ignore[union-attr]  # this process's copies only
                except (OSError, ValueError):
                    pass
            proc.returncode = 0  # never waited for or killed from here
        self._lock = threading.Lock()

    # -- frames --------------------------------------------------------------------------
    def _send_frame(self, payload: bytes) -> None:
        data = memoryview(_HEADER.pack(len(payload)) + payload)
        deadline = time.monotonic() + self.timeout_s
        while data:
            try:
                n = os.write(self._to_child, data)
                data = data[n:]
            except BlockingIOError:
                if not _wait(self._to_child, deadline, write=True):
                    raise WriterProcessLost(f"the writer process took no data for {self.timeout_s:.0f} s") from None
            except OSError as exc:  # EPIPE: the child is gone
                raise WriterProcessLost(f"the writer process is gone ({exc})") from None

    def _read_frame(self, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        header = self._read_exact(_HEADER.size, deadline, timeout)
        return pickle.loads(self._read_exact(_HEADER.unpack(header)[0], deadline, timeout))

    def _read_exact(self, n: int, deadline: float, timeout: float) -> bytes:
        chunks, left = [], n
        while left:
            if not _wait(self._from_child, deadline, write=False):
                raise WriterProcessLost(f"the writer process did not answer within {timeout:.0f} s")
            try:
                chunk = os.read(self._from_child, left)
            except OSError as exc:
                raise WriterProcessLost(f"the writer process is gone ({exc})") from None
            if not chunk:
                code = self._proc.poll() if self._proc is not None else None
                raise WriterProcessLost(f"the writer process exited (status {code})")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


def _wait(fd: int, deadline: float, write: bool) -> bool:
    """Wait (GIL released) until ``fd`` is ready, or False at ``deadline``."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        try:
            r, w, _ = select.select([] if write else [fd], [fd] if write else [], [], left)
        except InterruptedError:
            continue
        if r or w:
            return True


def _raise_answer(answer: Any) -> None:
    """Raise what the child's error answer stands for, classified by ``is_permanent`` as the child's was."""
    permanent, error_code, type_name, text = answer
    if permanent:
        if error_code:
            from mlflow.exceptions import MlflowException
            from mlflow.protos.databricks_pb2 import ErrorCode

            try:
                code = ErrorCode.Value(error_code)
            except ValueError:
                code = ErrorCode.Value("INVALID_PARAMETER_VALUE")
            raise MlflowException(text, error_code=code)
        raise {"TypeError": TypeError, "OverflowError": OverflowError}.get(type_name, ValueError)(text)
    raise WriterProcessError(f"{type_name}: {text}")


def _redact(exc: BaseException) -> str:
    from mlflow_monitor.redaction import redact

    return redact(exc)


def _after_fork_in_child() -> None:
    for handle in list(_live):
        handle._disown()


os.register_at_fork(after_in_child=_after_fork_in_child)


# ------------------------------------------------------------------------ the child --
def _child_main() -> int:
    """The writer process: read the URI, then ``(run_id, rows)`` requests until end of stdin."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray prints go to stderr, never into the protocol
    os.close(devnull)

    def read() -> Any:
        header = _child_read(proto_in, _HEADER.size)
        if header is None:
            return _EOF
        body = _child_read(proto_in, _HEADER.unpack(header)[0])
        return _EOF if body is None else pickle.loads(body)

    def answer(obj: Any) -> None:
        data = pickle.dumps(obj, _PICKLE)
        data = _HEADER.pack(len(data)) + data
        while data:
            data = data[os.write(proto_out, data):]

    uri = read()
    if uri is _EOF:
        return 0
    try:
        from mlflow_monitor.metrics.sql_writer import make_sql_writer

        writer = make_sql_writer(uri)
    except Exception as exc:
        answer(("unavailable", f"{type(exc).__name__}: {_redact(exc)[:300]}"))
        return 1
    if writer is None or writer.dialect != "sqlite":
        answer(("unavailable", "no SQL writer for this store"))
        return 1
    from mlflow.exceptions import MlflowException

    from mlflow_monitor.retry import is_permanent

    answer(("ready", writer.dialect))
    while True:
        request = read()
        if request is _EOF:
            return 0
        run_id, rows = request
        try:
            writer.write_points(run_id, rows)
        except Exception as exc:
            code = exc.error_code if isinstance(exc, MlflowException) else None
            answer((is_permanent(exc), code, type(exc).__name__, _redact(exc)[:2000]))
        else:
            answer(None)


_EOF = object()


def _child_read(fd: int, n: int) -> Optional[bytes]:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


if __name__ == "__main__":
    sys.exit(_child_main())
