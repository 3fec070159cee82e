"""The audit chain in the registry's own database: sqlite, PostgreSQL and MariaDB.

Tampering is done the way an operator with SQL access would: by hand, in SQL.
"""

from __future__ import annotations

import json
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from mlflow_monitor.gate.audit import append_audit, read_audit_log, verify_audit
from mlflow_monitor.gate.audit_chain import chain_hash

TABLE = "mlflow_monitor_audit"


def _sql(uri: str, statement: str, **params) -> None:
    engine = sa.create_engine(uri, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text(statement), params)
    engine.dispose()


def _fill(uri: str, n: int = 4) -> None:
    for i in range(1, n + 1):
        append_audit({"event": "verdict", "model_name": "m", "version": str(i), "target": "alias:champion",
                      "user": "alice", "verdict": "BLOCKED" if i % 2 else "PASSED"}, store_uri=uri)


def _problems(uri: str) -> list[str]:
    return [str(p) for p in verify_audit(uri).problems]


def test_records_are_stored_in_the_registry_database_in_order(sql_uri):
    _fill(sql_uri)

    records = read_audit_log(store_uri=sql_uri)

    assert [r["version"] for r in records] == ["1", "2", "3", "4"]
    assert {r["event"] for r in records} == {"verdict"} and all(r["id"] and r["ts"] for r in records)
    engine = sa.create_engine(sql_uri, poolclass=NullPool)
    with engine.connect() as conn:
        assert conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar() == 4
        assert conn.execute(sa.text("SELECT schema_version, last_seq FROM mlflow_monitor_audit_head")).one() == (1, 4)
    engine.dispose()
    report = verify_audit(sql_uri)
    assert report.ok and report.records == 4, report.problems


def test_verify_names_a_record_edited_by_hand(sql_uri):
    _fill(sql_uri)
    _sql(sql_uri, f"UPDATE {TABLE} SET record = REPLACE(record, 'BLOCKED', 'PASSED') WHERE seq = 3")

    problems = _problems(sql_uri)

    assert len(problems) == 1 and problems[0].startswith("record 3 (id ")
    assert "does not match its hash (edited)" in problems[0]


def test_verify_names_an_edited_indexed_column(sql_uri):
    _fill(sql_uri)
    _sql(sql_uri, f"UPDATE {TABLE} SET actor = 'mallory' WHERE seq = 2")

    problems = _problems(sql_uri)

    assert len(problems) == 1 and problems[0].startswith("record 2 ") and "column 'user'" in problems[0]


def test_verify_names_a_deleted_record(sql_uri):
    _fill(sql_uri)
    _sql(sql_uri, f"DELETE FROM {TABLE} WHERE seq = 2")

    problems = _problems(sql_uri)

    assert problems and problems[0].startswith("record 3 ") and "record 2 is missing" in problems[0]


def test_verify_names_a_deleted_last_record(sql_uri):
    _fill(sql_uri)
    _sql(sql_uri, f"DELETE FROM {TABLE} WHERE seq = 4")

    problems = _problems(sql_uri)

    assert problems == ["the log ends at record 3 but its head names record 4: the last record(s) were deleted"]


def test_verify_names_reordered_records(sql_uri):
    _fill(sql_uri)
    _sql(sql_uri, f"UPDATE {TABLE} SET seq = 100 WHERE seq = 2")
    _sql(sql_uri, f"UPDATE {TABLE} SET seq = 2 WHERE seq = 3")
    _sql(sql_uri, f"UPDATE {TABLE} SET seq = 3 WHERE seq = 100")

    problems = _problems(sql_uri)

    assert any(p.startswith("record 2 ") and "reordered" in p for p in problems), problems
    assert any(p.startswith("record 3 ") and "reordered" in p for p in problems), problems


def test_a_rehashed_edit_breaks_the_link_of_the_next_record(sql_uri):
    _fill(sql_uri)
    engine = sa.create_engine(sql_uri, poolclass=NullPool)
    with engine.begin() as conn:
        text, prev = conn.execute(sa.text(f"SELECT record, prev_hash FROM {TABLE} WHERE seq = 2")).one()
        forged = {**json.loads(text), "verdict": "BLOCKED"}
        conn.execute(sa.text(f"UPDATE {TABLE} SET record = :r, hash = :h WHERE seq = 2"),
                     {"r": json.dumps(forged, sort_keys=True, separators=(",", ":")), "h": chain_hash(prev, forged)})
    engine.dispose()

    problems = _problems(sql_uri)

    assert len(problems) == 1 and problems[0].startswith("record 3 ") and "does not link to record 2" in problems[0]


def test_with_a_key_every_record_is_signed_and_a_rehashed_edit_is_named(sql_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_MONITOR_AUDIT_KEY", "s3cret-audit-key-123")
    _fill(sql_uri, 3)
    engine = sa.create_engine(sql_uri, poolclass=NullPool)
    with engine.begin() as conn:
        macs = conn.execute(sa.text(f"SELECT mac FROM {TABLE} ORDER BY seq")).scalars().all()
        # rewrite record 2 and every hash after it, as someone without the key would
        rows = conn.execute(sa.text(f"SELECT seq, record, prev_hash FROM {TABLE} ORDER BY seq")).all()
        prev = rows[0].prev_hash
        for seq, text, _ in rows:
            rec = json.loads(text)
            if seq == 2:
                rec["user"] = "mallory"
            digest = chain_hash(prev, rec)
            conn.execute(sa.text(f"UPDATE {TABLE} SET record = :r, hash = :h, prev_hash = :p, actor = :a "
                                 "WHERE seq = :s"),
                         {"r": json.dumps(rec), "h": digest, "p": prev, "a": rec["user"], "s": seq})
            prev = digest
        conn.execute(sa.text("UPDATE mlflow_monitor_audit_head SET last_hash = :h"), {"h": prev})
    engine.dispose()

    problems = _problems(sql_uri)

    assert all(m and len(m) == 64 for m in macs)
    assert any(p.startswith("record 2 ") and "HMAC does not match" in p for p in problems), problems
    assert any("head HMAC" in p for p in problems), problems
    assert "s3cret-audit-key-123" not in json.dumps(read_audit_log(store_uri=sql_uri))


def test_without_the_key_signed_records_are_noted_not_failed(sql_uri, monkeypatch):
    monkeypatch.setenv("MLFLOW_MONITOR_AUDIT_KEY", "s3cret-audit-key-123")
    _fill(sql_uri, 2)
    monkeypatch.delenv("MLFLOW_MONITOR_AUDIT_KEY")

    report = verify_audit(sql_uri)

    assert report.ok and not report.keyed
    assert any("MLFLOW_MONITOR_AUDIT_KEY" in n for n in report.notes)


def test_concurrent_writers_never_fork_the_chain(sql_uri):
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for i in range(10):
                append_audit({"event": "verdict", "model_name": "m", "version": f"{w}.{i}"}, store_uri=sql_uri)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert not errors
    report = verify_audit(sql_uri)
    assert report.ok and report.records == 40, report.problems


def _append_many(uri: str, tag: str, n: int) -> None:
    from mlflow_monitor.gate.audit import append_audit as append

    for i in range(n):
        append({"event": "verdict", "model_name": "m", "version": f"{tag}.{i}"}, store_uri=uri)


@pytest.mark.slow
def test_concurrent_processes_never_fork_the_chain(sql_uri):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(sql_uri, f"p{p}", 15)) for p in range(3)]
    for p in procs:
        p.start()
    _append_many(sql_uri, "main", 15)
    for p in procs:
        p.join(timeout=180)

    assert [p.exitcode for p in procs] == [0, 0, 0]
    report = verify_audit(sql_uri)
    assert report.ok and report.records == 60, report.problems


def test_records_never_hold_secrets(sql_uri):
    append_audit({"event": "policy_change", "model_name": "m", "user": "bob",
                  "reason": "moved to postgresql://svc:hunter22@db/x", "password": "hunter22",
                  "details": {"api_key": "abc123xyz", "note": "token=tok-9876543"}}, store_uri=sql_uri)

    text = json.dumps(read_audit_log(store_uri=sql_uri))

    assert "hunter22" not in text and "abc123xyz" not in text and "tok-9876543" not in text
    assert "bob" in text


def test_a_schema_newer_than_the_plugin_is_refused_naming_both_versions(sql_uri):
    from mlflow_monitor.gate import audit_sql
    from mlflow_monitor.gate.audit_db import dispose_engines

    _fill(sql_uri, 1)
    _sql(sql_uri, "UPDATE mlflow_monitor_audit_head SET schema_version = 99")
    audit_sql._ready.clear()
    dispose_engines()

    with pytest.raises(RuntimeError, match="schema version 99, newer than this mlflow-monitor understands \\(1\\)"):
        append_audit({"event": "verdict"}, store_uri=sql_uri)
