"""Client path: alias and stage promotions through ``monitor:sqlite`` on real stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException

from mlflow_monitor.events import Verdict, subscribe
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from mlflow_monitor.gate.report_worker import wait_for_reports
from helpers.gate import (
    FEATURES,
    breast_cancer_frames,
    drifted,
    gated_client,
    recipe_yaml,
    train_version,
    write_current,
)

MODEL = "cancer"


@pytest.fixture
def verdicts():
    seen: list[Verdict] = []
    unsubscribe = subscribe(seen.append, Verdict)
    yield seen
    unsubscribe()


@pytest.fixture
def client():
    return gated_client()


def _set_recipe(client, tmp_path, frame, **kwargs):
    path = write_current(tmp_path, frame, name=f"current_{len(list(tmp_path.glob('current_*')))}.parquet")
    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(path, **kwargs))


def _alias_version(client, alias):
    try:
        return str(client.get_model_version_by_alias(MODEL, alias).version)
    except MlflowException:
        return None


def test_alias_promotion_passes_and_records_verdict(client, tmp_path, verdicts):
    version = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, holdout)

    client.set_registered_model_alias(MODEL, "champion", version)

    assert _alias_version(client, "champion") == version
    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.PASSED
    assert mv.tags[T.TARGET] == "alias:champion"
    assert mv.tags[T.REPORT].startswith(f"runs:/{mv.run_id}/{T.ARTIFACT_ROOT}/")
    assert len(mv.tags[T.RECIPE_HASH]) == 64
    assert T.DESCRIPTION_BEGIN in mv.description and "PASSED" in mv.description
    run = client.get_run(mv.run_id)
    assert run.data.metrics["monitor/drift_share"] < 0.3
    assert run.data.metrics["monitor/accuracy"] >= 0.8
    assert [v.passed for v in verdicts] == [True]
    assert verdicts[0].target == "alias:champion" and verdicts[0].run_id == mv.run_id


def test_alias_promotion_blocked_when_drift_share_exceeds_rule(client, tmp_path, verdicts):
    version = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, drifted(holdout))

    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias(MODEL, "champion", version)

    message = err.value.message
    assert err.value.get_http_status_code() == 400
    assert "BLOCKED" in message and "drift_share < 0.3" in message
    assert "actual 1" in message and "threshold 0.3" in message
    assert "report.html" in message
    assert _alias_version(client, "champion") is None
    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.BLOCKED
    assert "drift_share < 0.3" in mv.tags[T.REASON]
    folder = mv.tags[T.REPORT].split(f"runs:/{mv.run_id}/", 1)[1]
    # the verdict and summary.json are written before the call returns; the report follows
    local = client.download_artifacts(mv.run_id, f"{folder}/summary.json")
    summary = json.loads(Path(local).read_text())
    assert list(summary)[:3] == ["verdict", "allowed", "model_name"]  # opens with the verdict
    assert summary["verdict"] == "BLOCKED" and summary["allowed"] is False
    assert summary["report_status"] == "pending"
    failed = [r for r in summary["rules"] if not r["passed"]]
    assert failed and failed[0]["rule"] == "drift_share < 0.3" and failed[0]["actual"] == 1.0
    assert {c["column"] for c in summary["drift"]["columns"]} == set(FEATURES)
    assert wait_for_reports(120)
    names = {Path(f.path).name for f in client.list_artifacts(mv.run_id, folder)}
    assert {"summary.json", "report.html", "snapshot.json"} <= names
    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.REPORT_STATUS] == "ready"
    assert mv.tags[T.REPORT_HTML] == f"runs:/{mv.run_id}/{folder}/report.html"
    html = Path(client.download_artifacts(mv.run_id, f"{folder}/report.html")).read_text()
    assert "<html" in html.lower()
    # the gate's verdict comes first, above Evidently's own "Dataset Drift" wording
    assert html.index('id="mlflow-monitor-verdict"') < html.index("mlflow-monitor gate: BLOCKED") \
        < html.index('id="mlflow-monitor-banner"')
    assert [v.passed for v in verdicts] == [False]
    assert verdicts[0].failed_rules[0]["rule"] == "drift_share < 0.3"


def test_blocked_promotion_keeps_previous_alias_holder(client, tmp_path):
    v1 = train_version(client, MODEL)
    v2 = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, holdout)
    client.set_registered_model_alias(MODEL, "champion", v1)
    _set_recipe(client, tmp_path, drifted(holdout))

    with pytest.raises(MlflowException):
        client.set_registered_model_alias(MODEL, "champion", v2)

    assert _alias_version(client, "champion") == v1


def test_stage_transition_to_production_blocked_and_staging_not_gated(client, tmp_path):
    version = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, drifted(holdout), stages="[Production]")

    client.transition_model_version_stage(MODEL, version, "Staging")  # not a trigger
    with pytest.raises(MlflowException) as err:
        client.transition_model_version_stage(MODEL, version, "production")

    assert "stage:Production" in err.value.message
    mv = client.get_model_version(MODEL, version)
    assert mv.current_stage == "Staging"
    assert mv.tags[T.VERDICT] == T.BLOCKED and mv.tags[T.TARGET] == "stage:Production"


def test_stage_transition_to_production_passes(client, tmp_path):
    version = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, holdout)

    client.transition_model_version_stage(MODEL, version, "Production")

    mv = client.get_model_version(MODEL, version)
    assert mv.current_stage == "Production"
    assert mv.tags[T.VERDICT] == T.PASSED


def test_alias_not_in_triggers_passes_through_unevaluated(client, tmp_path):
    version = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, drifted(holdout))

    client.set_registered_model_alias(MODEL, "candidate", version)

    assert _alias_version(client, "candidate") == version
    assert T.VERDICT not in client.get_model_version(MODEL, version).tags
    assert [r for r in read_audit_log() if r.get("event") != "policy_change"] == []  # no verdict


def test_model_without_recipe_is_not_gated(client):
    version = train_version(client, MODEL)

    client.set_registered_model_alias(MODEL, "champion", version)

    assert _alias_version(client, "champion") == version
    assert T.VERDICT not in client.get_model_version(MODEL, version).tags


def test_description_keeps_user_text_and_replaces_only_gate_block(client, tmp_path):
    version = train_version(client, MODEL)
    client.update_model_version(MODEL, version, description="Trained by the risk team.")
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, holdout)

    client.set_registered_model_alias(MODEL, "champion", version)
    client.set_registered_model_alias(MODEL, "champion", version)

    text = client.get_model_version(MODEL, version).description
    assert text.startswith("Trained by the risk team.")
    assert text.count(T.DESCRIPTION_BEGIN) == 1 and text.count(T.DESCRIPTION_END) == 1


def test_every_decision_is_appended_to_audit_log(client, tmp_path):
    version = train_version(client, MODEL)
    _, holdout = breast_cancer_frames()
    _set_recipe(client, tmp_path, drifted(holdout))
    with pytest.raises(MlflowException):
        client.set_registered_model_alias(MODEL, "champion", version)
    _set_recipe(client, tmp_path, holdout)
    client.set_registered_model_alias(MODEL, "champion", version)

    records = [r for r in read_audit_log() if r.get("event") in (None, "verdict")]
    assert [(r["version"], r["target"], r["verdict"]) for r in records] == [
        (version, "alias:champion", "BLOCKED"), (version, "alias:champion", "PASSED")]
    assert all(r["user"] for r in records)
