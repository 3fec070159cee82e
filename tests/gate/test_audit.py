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


def test_gated_promotions_record_the_champion_they_were_compared_with(tmp_path):
    from mlflow.exceptions import MlflowException

    from mlflow_monitor.gate import tags as T
    from mlflow_monitor.gate.audit import verify_audit
    from helpers.gate import breast_cancer_frames, drifted, gated_client, recipe_yaml, train_version, write_current

    client = gated_client()
    first = train_version(client, "audited")
    second = train_version(client, "audited", c_reg=0.5)
    good = write_current(tmp_path, breast_cancer_frames()[1], "good.parquet")
    client.set_registered_model_tag("audited", T.RECIPE, recipe_yaml(good))
    client.set_registered_model_alias("audited", "champion", first)
    bad = write_current(tmp_path, drifted(breast_cancer_frames()[1]), "bad.parquet")
    client.set_registered_model_tag("audited", T.RECIPE, recipe_yaml(bad))
    try:
        client.set_registered_model_alias("audited", "champion", second)
    except MlflowException:
        pass

    records = [r for r in read_audit_log() if r.get("model_name") == "audited" and r.get("event") == "verdict"]

    assert [(r["event"], r["version"], r["verdict"], r["champion_before"]) for r in records] == [
        ("verdict", first, "PASSED", None), ("verdict", second, "BLOCKED", first)]
    assert verify_audit().ok


def test_the_local_file_is_chained_and_private(tmp_path):
    import os

    from mlflow_monitor.gate.audit import verify_audit

    uri = (tmp_path / "mlruns").as_uri()
    append_audit({"event": "verdict", "model_name": "m"}, store_uri=uri)
    append_audit({"event": "verdict", "model_name": "m"}, store_uri=uri)

    path = audit_log_path()
    rows = [__import__("json").loads(x) for x in path.read_text().splitlines()]

    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [r["seq"] for r in rows] == [1, 2] and rows[1]["prev_hash"] == rows[0]["hash"]
    assert verify_audit(uri).ok
