"""The gate's append-only audit log: ``$MLFLOW_MONITOR_HOME/audit/gate.jsonl``.

One JSON line per decision (including blocks caused by bad input, overrides and
override requests), on the machine that ran the gate (the server for REST/UI
promotions). Writers lock the file, so concurrent workers never interleave lines.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path
from typing import Any, Optional

from mlflow_monitor.gate.escaping import json_safe

__all__ = ["append_audit", "audit_log_path", "read_audit_log"]


def audit_log_path() -> Path:
    """Where the audit log is (its folder is created)."""
    from mlflow_monitor.paths import monitor_home

    d = monitor_home() / "audit"
    d.mkdir(parents=True, exist_ok=True)
    return d / "gate.jsonl"


def read_audit_log(path: Optional[Path] = None) -> list[dict[str, Any]]:
    """Every record in the audit log, oldest first."""
    p = path or audit_log_path()
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_audit(record: dict[str, Any]) -> None:
    """Append one JSON line to the audit log (locked against concurrent writers)."""
    line = json.dumps(json_safe(record), sort_keys=True) + "\n"
    with open(audit_log_path(), "a", encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            fh.write(line)
            fh.flush()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
