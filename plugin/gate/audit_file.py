"""The audit chain as a JSONL file, for registry stores that are not SQL (file store, http).

``$MLFLOW_MONITOR_HOME/audit/gate.jsonl``, mode 0600, one line per record:
``{"seq", "prev_hash", "hash", "mac", "record"}`` -- the same chain as the SQL table.
Writers hold ``flock`` on the file (threads and processes of one host), read the last
line and append after it.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

from mlflow_monitor.gate.audit_chain import GENESIS, AuditRow, audit_key, chain_hash, record_mac

__all__ = ["FileAudit", "audit_log_path"]

_guard = threading.Lock()


def audit_log_path() -> Path:
    """Where the local audit log is (its folder is created, mode 0700)."""
    from mlflow_monitor.paths import monitor_home

    d = monitor_home() / "audit"
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    return d / "gate.jsonl"


class FileAudit:
    """The audit chain in one local JSONL file."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = Path(path) if path is not None else audit_log_path()

    def describe(self) -> str:
        return f"local file {self.path}"

    def append(self, body: dict[str, Any]) -> int:
        key = audit_key()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _guard:
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.fchmod(fd, 0o600)  # also tightens a file an older version left 0644
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    if not _still_at(fd, self.path):
                        continue  # moved aside while we waited: lock the file now at the path
                    last = _last_line(fd)
                    if last is not None and not {"seq", "hash"} <= set(last):
                        # a log from before the chain: keep it beside, start the chain afresh
                        os.rename(self.path, self.path.with_name(f"gate.unchained.{time.time_ns()}.jsonl"))
                        continue
                    seq, prev = (int(last["seq"]) + 1, str(last["hash"])) if last else (1, GENESIS)
                    digest = chain_hash(prev, body)
                    line = json.dumps({"seq": seq, "prev_hash": prev, "hash": digest,
                                       "mac": record_mac(key, digest) if key else None, "record": body},
                                      sort_keys=True, ensure_ascii=False) + "\n"
                    os.write(fd, line.encode("utf-8"))
                    os.fsync(fd)
                    return seq
                finally:
                    os.close(fd)  # releases the flock

    def rows(self, *, model_name: Optional[str] = None, version: Optional[str] = None) -> Iterator[AuditRow]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                    row = AuditRow(int(raw["seq"]), str(raw["prev_hash"]), str(raw["hash"]), raw.get("mac"),
                                   dict(raw["record"]))
                except (ValueError, KeyError, TypeError):
                    row = AuditRow(n, "?", "?", None, {"id": f"line {n}", "unreadable": True})
                if model_name is not None and row.record.get("model_name") != model_name:
                    continue
                if version is not None and str(row.record.get("version")) != str(version):
                    continue
                yield row

    def head(self) -> None:
        return None  # a file has no head row: its last line is the tail


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _last_line(fd: int) -> Optional[dict[str, Any]]:
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    chunk = 4096
    while True:
        start = max(0, size - chunk)
        data = os.pread(fd, size - start, start)
        lines = data.rstrip(b"\n").split(b"\n")
        if len(lines) > 1 or start == 0:
            return json.loads(lines[-1].decode("utf-8"))
        chunk *= 4
