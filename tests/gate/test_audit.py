"""The append-only audit log."""

from __future__ import annotations

from mlflow_monitor.gate.audit import append_audit, audit_log_path, read_audit_log


def test_audit_log_is_append_only_json_lines():
    append_audit({"model_name": "m", "verdict": "BLOCKED", "value": float("nan")})
    append_audit({"model_name": "m", "verdict": "PASSED"})

    records = read_audit_log()

    assert [r["verdict"] for r in records] == ["BLOCKED", "PASSED"]
    assert records[0]["value"] is None  # NaN is not valid JSON


def test_audit_log_lives_under_the_monitor_home(tmp_path):
    path = audit_log_path()

    assert path.name == "gate.jsonl" and path.parent.name == "audit"
    assert str(path).startswith(str(tmp_path / "monitor_home"))
    assert read_audit_log() == []
