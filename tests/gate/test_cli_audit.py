"""``mlflow-monitor audit verify | show | export`` on the registry's sqlite database and on the local file."""

from __future__ import annotations

import json

import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.pool import NullPool

from mlflow_monitor.cli import main
from mlflow_monitor.gate.audit import append_audit


def _fill(uri=None):
    for v, verdict in (("1", "BLOCKED"), ("2", "PASSED"), ("1", "OVERRIDDEN")):
        append_audit({"model_name": "fraud", "version": v, "target": "alias:champion", "verdict": verdict,
                      "user": "alice", "timestamp": "2024-05-01T12:00:00.000000Z"}, store_uri=uri)
    append_audit({"event": "policy_change", "model_name": "other", "user": "owner", "reason": "recipe set"},
                 store_uri=uri)


def test_verify_passes_on_an_intact_chain(mlflow_db):
    _fill()

    result = CliRunner().invoke(main, ["audit", "verify"])

    assert result.exit_code == 0, result.output
    assert "audit: 4 records in table mlflow_monitor_audit" in result.output
    assert "OK: the chain is intact (records 1..4)" in result.output


def test_verify_exits_1_naming_the_record_edited_by_hand(mlflow_db):
    _fill()
    engine = sa.create_engine(f"sqlite:///{mlflow_db}", poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE mlflow_monitor_audit SET record = REPLACE(record, 'BLOCKED', 'PASSED') "
                             "WHERE seq = 1"))
    engine.dispose()

    result = CliRunner().invoke(main, ["audit", "verify", "--registry-uri", f"monitor:sqlite:///{mlflow_db}"])

    assert result.exit_code == 1
    assert "FAILED: 1 problem(s)" in result.output
    assert "record 1 (id " in result.output and "does not match its hash (edited)" in result.output


def test_show_lists_one_models_records_and_filters_by_version(mlflow_db):
    _fill()

    every = CliRunner().invoke(main, ["audit", "show", "fraud"])
    one = CliRunner().invoke(main, ["audit", "show", "fraud", "2", "--json"])

    assert every.exit_code == 0, every.output
    lines = every.output.splitlines()
    assert lines[0].split()[:4] == ["seq", "time", "(UTC)", "event"]
    assert [ln.split()[0] for ln in lines[1:]] == ["1", "2", "3"] and "other" not in every.output
    assert "BLOCKED" in lines[1] and "OVERRIDDEN" in lines[3]
    records = [json.loads(x) for x in one.output.splitlines()]
    assert [(r["seq"], r["verdict"]) for r in records] == [(2, "PASSED")]


def test_show_of_a_model_without_records_says_so(mlflow_db):
    result = CliRunner().invoke(main, ["audit", "show", "nobody"])

    assert result.exit_code == 0 and "no audit records for model 'nobody'" in result.output


def test_export_writes_every_record_with_its_chain_fields(mlflow_db, tmp_path):
    _fill()
    out = tmp_path / "audit.jsonl"

    result = CliRunner().invoke(main, ["audit", "export", "--format", "jsonl", "-o", str(out)])

    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["seq"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["prev_hash"] == rows[0]["hash"] and rows[3]["record"]["event"] == "policy_change"


def test_export_rejects_an_unknown_format_naming_the_allowed_one(mlflow_db):
    result = CliRunner().invoke(main, ["audit", "export", "--format", "csv"])

    assert result.exit_code == 2 and "'csv' is not 'jsonl'" in result.output


def test_a_file_store_registry_uses_the_local_0600_file(tmp_path):
    uri = (tmp_path / "mlruns").as_uri()
    _fill(uri)

    from mlflow_monitor.gate.audit import audit_log_path

    path = audit_log_path()
    result = CliRunner().invoke(main, ["audit", "verify", "--registry-uri", uri])

    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert result.exit_code == 0 and f"local file {path}" in result.output
    lines = path.read_text().splitlines()
    assert json.loads(lines[1])["record"]["verdict"] == "PASSED"
    tampered = lines[:1] + lines[2:]  # delete record 2
    path.write_text("\n".join(tampered) + "\n")
    result = CliRunner().invoke(main, ["audit", "verify", "--registry-uri", uri])
    assert result.exit_code == 1 and "record 3 (id " in result.output and "record 2 is missing" in result.output


def test_an_unreachable_database_is_a_clear_error_without_its_password(mlflow_db):
    result = CliRunner().invoke(main, ["audit", "verify", "--registry-uri",
                                       "postgresql+psycopg://u:hunter22@127.0.0.1:1/nope"])

    assert result.exit_code == 1
    assert "cannot open the audit of postgresql+psycopg://***@127.0.0.1:1/nope" in result.output
    assert "hunter22" not in result.output


def test_an_export_verifies_as_a_file_and_an_edited_copy_does_not(mlflow_db, tmp_path):
    _fill()
    out = tmp_path / "audit.jsonl"
    CliRunner().invoke(main, ["audit", "export", "-o", str(out)])

    intact = CliRunner().invoke(main, ["audit", "verify", "--file", str(out)])
    out.write_text(out.read_text().replace("OVERRIDDEN", "PASSED"))
    edited = CliRunner().invoke(main, ["audit", "verify", "--file", str(out)])

    assert intact.exit_code == 0 and f"local file {out}" in intact.output
    assert edited.exit_code == 1 and "record 3 (id " in edited.output and "(edited)" in edited.output
