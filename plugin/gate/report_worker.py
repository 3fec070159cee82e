"""Building gate reports off the caller's thread, without losing one.

The gate writes a decision's verdict, tags and ``summary.json`` before the promotion
call returns, then hands the Evidently report (:class:`~.report_job.ReportJob`) to
:func:`submit_report`:

- **background** (the default): one daemon thread per process builds the reports in
  order. Inside ``mlflow server`` that thread belongs to the server's worker process, so
  the REST request (and the UI's spinner) ends with the verdict.
- **sync** (``MLFLOW_MONITOR_GATE_REPORT=sync``): the report is built before the call
  returns, as before (slower; the anchor of ``benchmarks/gate_promotion.py``).

Durability. Each submitted job is first written as a pending record,
``$MLFLOW_MONITOR_HOME/reports/pending/<job>.json`` (mode 0600, URIs redacted), and removed
once its report is built. A failed report is recorded on the run and version
(:mod:`.report_job`) and its record moves to ``<dead letters>/reports/`` with the error.
At interpreter exit the process waits up to ``MLFLOW_MONITOR_REPORT_EXIT_WAIT`` seconds
(default 60) for its queue. A record left behind by a process that ended (killed, or
past that wait) is completed by the next gated promotion in a process using the same
registry, or by ``mlflow-monitor report --pending``.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

from mlflow_monitor.gate.report_job import ReportJob, TrackingUri, run_report_job
from mlflow_monitor.paths import dead_letter_dir, monitor_home, private_dir, write_private_text
from mlflow_monitor.redaction import redact

__all__ = ["ENV_EXIT_WAIT", "ENV_REPORT_MODE", "pending_reports", "report_mode", "resume_pending_reports",
           "submit_report", "wait_for_reports"]

_logger = logging.getLogger(__name__)

ENV_REPORT_MODE = "MLFLOW_MONITOR_GATE_REPORT"  # background | sync
ENV_EXIT_WAIT = "MLFLOW_MONITOR_REPORT_EXIT_WAIT"  # seconds, default 60
_MODES = ("background", "sync")
_STALE_OTHER_HOST_S = 3600.0  # a record from another host this old is an orphan


def report_mode() -> str:
    """``background`` or ``sync`` from ``MLFLOW_MONITOR_GATE_REPORT``; a bad value is
    named in a warning and means ``background`` (a promotion never fails on it)."""
    raw = (os.environ.get(ENV_REPORT_MODE) or "background").strip().lower()
    if raw not in _MODES:
        _logger.warning("mlflow-monitor: %s=%r is not one of %s; building reports in the background",
                        ENV_REPORT_MODE, redact(raw)[:40], "/".join(_MODES))
        return "background"
    return raw


def pending_dir() -> Path:
    """Where pending report records live (mode 0700)."""
    return private_dir(monitor_home() / "reports" / "pending")


def failed_dir() -> Path:
    """Dead letters of reports that failed (mode 0700)."""
    return private_dir(dead_letter_dir() / "reports")


def submit_report(job: ReportJob, *, store: Any, tracking_uri: TrackingUri) -> None:
    """Record ``job`` as pending, then build it (on the worker thread, or now in sync mode).

    Never raises: a job that cannot even be recorded is built at once (and a failure of
    that is recorded by :func:`~.report_job.run_report_job`)."""
    try:
        _write_record(job)
    except Exception as exc:
        _logger.warning("mlflow-monitor: could not record the pending report %s: %s", job.job_id,
                        redact(str(exc))[:300])
    if report_mode() == "sync":
        _finish(job, run_report_job(job, store=store, tracking_uri=tracking_uri))
        return
    _WORKER.put(job, store, tracking_uri)
    _WORKER.adopt_orphans_once(job.registry_uri, store, tracking_uri)


def wait_for_reports(timeout: Optional[float] = None) -> bool:
    """Block until this process's queued reports are built (or ``timeout`` seconds pass);
    True when none is left."""
    return _WORKER.wait(timeout)


def pending_reports() -> list[dict[str, Any]]:
    """The pending records on this machine (any process), oldest first."""
    out = []
    for path in sorted(pending_dir().glob("*.json")):
        record = _read(path)
        if record is not None:
            out.append(record)
    return sorted(out, key=lambda r: r.get("created") or "")


def resume_pending_reports(store: Any, *, registry_uri: Optional[str], tracking_uri: Optional[str],
                           only_orphans: bool = True,
                           on_result: Optional[Callable[[ReportJob, Optional[str]], None]] = None) -> int:
    """Build, here and now, the pending reports whose registry is ``registry_uri`` (compared
    redacted) and whose process has ended (every one with ``only_orphans=False``; a job
    another live process is building is then built twice, which is harmless). Each job is
    claimed first, so two resumers never build the same one. ``on_result(job, error)``
    sees each outcome. Returns how many were built or failed."""
    done = 0
    for job in _claim(registry_uri, only_orphans=only_orphans):
        error = run_report_job(job, store=store, tracking_uri=tracking_uri)
        _finish(job, error)
        if on_result is not None:
            on_result(job, error)
        done += 1
    return done


# -- the worker thread -------------------------------------------------------------------
class _Worker:
    """One daemon thread per process building queued report jobs in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: "queue.Queue[tuple[ReportJob, Any, TrackingUri]]" = queue.Queue()
        self._outstanding = 0
        self._thread: Optional[threading.Thread] = None
        self._adopted: set[Optional[str]] = set()
        self._exit_hook = False

    def put(self, job: ReportJob, store: Any, tracking_uri: TrackingUri) -> None:
        with self._lock:
            self._outstanding += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="mlflow-monitor-reports",
                                                daemon=True)
                self._thread.start()
            if not self._exit_hook:
                atexit.register(_wait_at_exit)
                self._exit_hook = True
        self._queue.put((job, store, tracking_uri))

    def adopt_orphans_once(self, registry_uri: Optional[str], store: Any, tracking_uri: TrackingUri) -> None:
        """Queue, once per registry in this process, the pending jobs of ended processes."""
        key = redact(registry_uri) if registry_uri else None
        with self._lock:
            if key in self._adopted:
                return
            self._adopted.add(key)
        try:
            jobs = _claim(registry_uri, only_orphans=True)
        except Exception as exc:
            _logger.warning("mlflow-monitor: could not read the pending reports: %s", redact(str(exc))[:300])
            return
        for job in jobs:
            _logger.info("mlflow-monitor: resuming the report of model '%s' version %s left pending "
                         "by an ended process", job.model_name, job.version)
            self.put(job, store, tracking_uri)

    def wait(self, timeout: Optional[float]) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._outstanding:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def _loop(self) -> None:
        while True:
            job, store, tracking_uri = self._queue.get()
            try:
                _finish(job, run_report_job(job, store=store, tracking_uri=tracking_uri))
            except Exception as exc:  # run_report_job records its failures; this is a last resort
                _logger.warning("mlflow-monitor: report worker error: %s", redact(str(exc))[:300])
            finally:
                with self._idle:
                    self._outstanding -= 1
                    self._idle.notify_all()

    def reset_after_fork(self) -> None:
        """In a forked child: no thread, an empty queue (the parent builds its own jobs)."""
        self.__init__()  # type: ignore[misc]


_WORKER = _Worker()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WORKER.reset_after_fork)


def _wait_at_exit() -> None:
    """At interpreter exit: wait (bounded) for the queue; say where the rest is."""
    if not _WORKER.outstanding:
        return
    try:
        limit = float(os.environ.get(ENV_EXIT_WAIT) or 60)
    except ValueError:
        limit = 60.0
    if not _WORKER.wait(max(0.0, limit)):
        _logger.warning("mlflow-monitor: %d gate report(s) still being built at exit after %gs; they "
                        "stay pending in %s and are completed by the next gated promotion or by "
                        "`mlflow-monitor report --pending`", _WORKER.outstanding, limit, pending_dir())


# -- pending records ---------------------------------------------------------------------
def _record_path(job_id: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)[:150]
    return pending_dir() / f"{safe}.json"


def _write_record(job: ReportJob) -> None:
    record = job.to_record()
    record.update(pid=os.getpid(), host=socket.gethostname(), written=time.time())
    write_private_text(_record_path(job.job_id), json.dumps(record, indent=1))


def _finish(job: ReportJob, error: Optional[str]) -> None:
    """Remove ``job``'s pending record; a failed one becomes a dead letter with its error."""
    path = _record_path(job.job_id)
    try:
        if error is not None:
            record = _read(path) or job.to_record()
            record["error"] = error
            record["failed_at"] = time.time()
            write_private_text(failed_dir() / path.name, json.dumps(record, indent=1))
        path.unlink(missing_ok=True)
    except OSError as exc:
        _logger.warning("mlflow-monitor: could not update the pending report record %s: %s",
                        path.name, redact(str(exc))[:300])


def _read(path: Path) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_orphan(record: dict[str, Any]) -> bool:
    if record.get("host") != socket.gethostname():
        return time.time() - float(record.get("written") or 0) > _STALE_OTHER_HOST_S
    try:
        pid = int(record.get("pid") or 0)
    except (TypeError, ValueError):
        return True
    if pid == os.getpid():
        return False  # our own: queued in this process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, someone else's
    return False


def _claim(registry_uri: Optional[str], *, only_orphans: bool) -> list[ReportJob]:
    """Take over the matching pending records: each is renamed (atomic: one claimer wins)
    and rewritten under this process's id."""
    want = redact(registry_uri) if registry_uri else None
    jobs = []
    for path in sorted(pending_dir().glob("*.json")):
        record = _read(path)
        if record is None or record.get("registry_uri") != want:
            continue
        if only_orphans and not _is_orphan(record):
            continue
        claimed = path.with_name(f"{path.name}.claim-{os.getpid()}")
        try:
            os.rename(path, claimed)
        except FileNotFoundError:
            continue  # another process claimed it first
        try:
            job = ReportJob.from_record(record)
        except ValueError as exc:
            _logger.warning("mlflow-monitor: unreadable pending report %s moved to %s: %s", path.name,
                            failed_dir(), exc)
            os.replace(claimed, failed_dir() / path.name)
            continue
        job.registry_uri = registry_uri
        _write_record(job)
        claimed.unlink(missing_ok=True)
        jobs.append(job)
    return jobs
