"""The audit chain: how a record is made canonical, hashed, signed and checked.

Each stored row is ``(seq, prev_hash, hash, mac, record)``:

- ``record`` is a JSON object (redacted, with ``id``, ``ts`` and ``event``);
- ``hash = sha256(prev_hash + "\\n" + canonical_json(record))``, where ``prev_hash`` is
  the hash of the row before (``GENESIS`` for the first);
- ``mac = HMAC-SHA256(key, hash)`` when the server key ``MLFLOW_MONITOR_AUDIT_KEY`` is
  set (the key is never stored, logged or echoed).

The position ``seq`` is not hashed, so a moved row still matches its own hash and
:func:`verify_rows` can say it was moved (its link names another predecessor), apart
from edited (its hash no longer matches) or deleted (a gap, a dangling link, or a head
that names a later row).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import os
import re
import uuid
from typing import Any, Iterable, Optional

from mlflow_monitor.gate.escaping import json_safe
from mlflow_monitor.redaction import MASK, redact, register_secret

__all__ = ["ENV_KEY", "GENESIS", "AuditRow", "Problem", "audit_key", "canonical_json", "chain_hash",
           "head_mac", "new_record", "record_mac", "verify_rows"]

ENV_KEY = "MLFLOW_MONITOR_AUDIT_KEY"
GENESIS = "0" * 64

_SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|authorization|credential)")


def audit_key() -> Optional[bytes]:
    """The server key from ``MLFLOW_MONITOR_AUDIT_KEY`` (registered with the redactor), or None."""
    key = os.environ.get(ENV_KEY)
    if not key:
        return None
    register_secret(key)
    return key.encode("utf-8")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the same object always gives the same text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def chain_hash(prev_hash: str, record: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical_json(record)}".encode("utf-8")).hexdigest()


def record_mac(key: bytes, row_hash: str) -> str:
    return hmac.new(key, row_hash.encode("ascii"), hashlib.sha256).hexdigest()


def head_mac(key: bytes, last_seq: int, last_hash: str) -> str:
    return hmac.new(key, f"head:{last_seq}:{last_hash}".encode("ascii"), hashlib.sha256).hexdigest()


def new_record(record: dict[str, Any], *, extra: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """``record`` made storable: JSON-safe, secrets removed, ``id``/``ts``/``event`` added.

    Accepts both shapes the gate writes: ``{"event": ..., ...}`` and a verdict summary
    (``summary_of(decision)``, which has ``verdict`` and no ``event``).
    """
    from mlflow_monitor.gate.provenance import utc_now

    body = _scrub(json_safe(dict(record)))
    for key, value in (extra or {}).items():
        body.setdefault(key, _scrub(json_safe(value)))
    if not body.get("event"):
        verdict = body.get("verdict")
        body["event"] = "override_requested" if verdict == "OVERRIDE_REQUESTED" else (
            "verdict" if verdict is not None else "other")
    body["id"] = uuid.uuid4().hex
    body.setdefault("ts", body.get("timestamp") or utc_now())
    return body


def _scrub(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEY.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, dict):
        return {str(k): _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


@dataclasses.dataclass
class AuditRow:
    seq: int
    prev_hash: str
    hash: str
    mac: Optional[str]
    record: dict[str, Any]
    # SQL only: the indexed columns, which must say what the record says
    columns: Optional[dict[str, Any]] = None

    @property
    def record_id(self) -> str:
        return str(self.record.get("id", "?"))


@dataclasses.dataclass(frozen=True)
class Problem:
    seq: Optional[int]  # the row's position, None for the log as a whole
    record_id: Optional[str]
    what: str

    def __str__(self) -> str:
        if self.seq is None:
            return self.what
        return f"record {self.seq} (id {self.record_id}): {self.what}"


def verify_rows(rows: Iterable[AuditRow], *, key: Optional[bytes],
                head: Optional[tuple[int, str, Optional[str]]] = None) -> tuple[list[Problem], list[str]]:
    """Check ``rows`` (ordered by ``seq``) and the head ``(last_seq, last_hash, mac)``.

    Returns ``(problems, notes)``: problems are edits, deletions, moves and bad HMACs;
    notes are facts that are not failures (records written before the key was set).
    """
    rows = list(rows)
    problems: list[Problem] = []
    notes: list[str] = []
    intact = {r.hash: r.seq for r in rows if _content_ok(r)}
    expected_prev, expected_seq = GENESIS, 1
    signed_seen, unsigned_before = False, 0
    for row in rows:
        p = lambda what, r=row: problems.append(Problem(r.seq, r.record_id, what))  # noqa: E731
        if row.seq > expected_seq:
            gap = (f"record {expected_seq} is" if row.seq == expected_seq + 1
                   else f"records {expected_seq}..{row.seq - 1} are")
            p(f"{gap} missing before it (deleted)")
        if not _content_ok(row):
            p("its content does not match its hash (edited)")
        if row.prev_hash != expected_prev:
            follows = intact.get(row.prev_hash)
            if follows is not None and follows != row.seq - 1:
                p(f"out of order: in the chain it follows record {follows}, but it is stored at "
                  f"position {row.seq} (reordered)")
            elif row.seq <= expected_seq:  # no gap to explain it
                before = "the start of the log" if expected_seq == 1 else f"record {expected_seq - 1}"
                p(f"it does not link to {before}: that record was rewritten, or one was removed "
                  "and the chain re-hashed")
        for column, value in (row.columns or {}).items():
            if str(row.record.get(column) if row.record.get(column) is not None else "") != str(
                    value if value is not None else ""):
                p(f"column '{column}' says {value!r} but the record says {row.record.get(column)!r} (edited)")
        if key is not None:
            if row.mac is None:
                if signed_seen:
                    p("it has no HMAC although earlier records have one (forged or stripped)")
                else:
                    unsigned_before += 1
            else:
                signed_seen = True
                if not hmac.compare_digest(row.mac, record_mac(key, row.hash)):
                    p("its HMAC does not match (forged, or written with another key)")
        expected_prev, expected_seq = row.hash, row.seq + 1
    if key is not None and unsigned_before:
        notes.append(f"{unsigned_before} record(s) at the start carry no HMAC "
                     "(written before the key was set)")
    if key is None and any(r.mac for r in rows):
        notes.append(f"records carry an HMAC that was not checked: set {ENV_KEY} to check it")
    if head is not None:
        last_seq, last_hash, mac = head
        have_seq = rows[-1].seq if rows else 0
        have_hash = rows[-1].hash if rows else GENESIS
        if last_seq != have_seq or last_hash != have_hash:
            if last_seq > have_seq:
                problems.append(Problem(None, None, f"the log ends at record {have_seq} but its head names "
                                        f"record {last_seq}: the last record(s) were deleted"))
            else:
                problems.append(Problem(None, None, f"the log's head names record {last_seq}, "
                                        f"but it ends at record {have_seq} (head or tail edited)"))
        if key is not None and mac is not None and not hmac.compare_digest(
                mac, head_mac(key, last_seq, last_hash)):
            problems.append(Problem(None, None, "the log's head HMAC does not match (head edited)"))
    return problems, notes


def _content_ok(row: AuditRow) -> bool:
    try:
        return chain_hash(row.prev_hash, row.record) == row.hash
    except (TypeError, ValueError):
        return False
