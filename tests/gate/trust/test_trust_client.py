"""Trust rules where the gate runs in the client (``enable_gating()``): the OS user, the
operator's default policy, prompt aliases, and clients built before gating was enabled."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.exceptions import MlflowException

import mlflow_monitor
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from mlflow_monitor.gate.authority import current_identity, os_user
from helpers.gate import gated_client, recipe_yaml, reference_only_version


def _events(event):
    return [r for r in read_audit_log() if r.get("event") == event]


def test_client_identity_is_the_os_account_not_an_environment_claim(monkeypatch):
    monkeypatch.setenv("USER", "alice.ciso")
    monkeypatch.setenv("LOGNAME", "alice.ciso")
    monkeypatch.setenv("MLFLOW_MONITOR_USER", "alice.ciso")

    identity = current_identity()

    assert identity.kind == "client" and identity.user == os_user() != "alice.ciso"


def test_default_block_policy_stops_a_protected_alias_on_a_model_without_recipe(monkeypatch):
    monkeypatch.setenv("MLFLOW_MONITOR_DEFAULT_POLICY", "block")
    client = gated_client()
    run = client.create_run("0")
    client.create_registered_model("fresh")
    client.create_model_version("fresh", f"runs:/{run.info.run_id}/m", run.info.run_id)

    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias("fresh", "champion", "1")
    client.set_registered_model_alias("fresh", "candidate", "1")  # not protected: ungated

    assert err.value.get_http_status_code() == 400
    first = err.value.message.splitlines()[0]
    assert "BLOCKED" in first and "has no recipe" in first and "alias:champion" in first
    assert {k: str(v) for k, v in client.get_registered_model("fresh").aliases.items()} == {"candidate": "1"}
    [verdict] = _events("verdict")
    assert verdict["user"] == os_user() and verdict["target"] == "alias:champion"


def test_default_builtin_policy_fails_closed_without_evidence(monkeypatch):
    monkeypatch.setenv("MLFLOW_MONITOR_DEFAULT_POLICY", "classification")
    monkeypatch.setenv("MLFLOW_MONITOR_PROTECTED_STAGES", "Production,Staging")
    client = gated_client()
    run = client.create_run("0")  # no reference, no evaluation data
    client.create_registered_model("no-evidence")
    client.create_model_version("no-evidence", f"runs:/{run.info.run_id}/m", run.info.run_id)

    with pytest.raises(MlflowException, match="BLOCKED"):
        client.transition_model_version_stage("no-evidence", "1", "Staging")

    assert client.get_model_version("no-evidence", "1").current_stage == "None"
    [record] = [r for r in read_audit_log() if r.get("model_name") == "no-evidence"]
    assert record["verdict"] == T.BLOCKED and record["target"] == "stage:Staging" and record["error"]


def test_unreadable_default_policy_blocks_protected_targets(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_MONITOR_DEFAULT_POLICY", str(tmp_path / "missing.yaml"))
    client = gated_client()
    run = client.create_run("0")
    client.create_registered_model("m")
    client.create_model_version("m", f"runs:/{run.info.run_id}/m", run.info.run_id)

    with pytest.raises(MlflowException, match="could not be read"):
        client.set_registered_model_alias("m", "champion", "1")

    assert "champion" not in client.get_registered_model("m").aliases


def test_set_prompt_alias_is_gated_like_a_model_alias(tmp_path):
    client = gated_client()
    client.register_prompt("greeting", "Hello {{name}}")
    client.set_prompt_tag("greeting", T.RECIPE, recipe_yaml(tmp_path / "none.parquet"))

    with pytest.raises(MlflowException) as err:
        client.set_prompt_alias("greeting", "champion", 1)

    assert "alias:champion" in err.value.message
    with pytest.raises(MlflowException):  # no such alias: nothing was set
        client.get_prompt_version_by_alias("greeting", "champion")


def test_client_built_before_enable_gating_is_gated_and_restored(tmp_path):
    early = mlflow.MlflowClient()  # made before gating: would be silently ungated
    version = reference_only_version(early, "early")
    early.set_registered_model_tag("early", T.RECIPE, recipe_yaml(tmp_path / "none.parquet"))

    mlflow_monitor.enable_gating()
    with pytest.raises(MlflowException, match="BLOCKED"):
        early.set_registered_model_alias("early", "champion", version)
    mlflow_monitor.enable_gating(False)
    early.set_registered_model_alias("early", "champion", version)  # ungated again

    assert str(early.get_registered_model("early").aliases["champion"]) == version


def test_recipe_change_in_a_client_is_audited_with_the_os_user(tmp_path):
    client = gated_client()
    client.create_registered_model("policy")

    client.set_registered_model_tag("policy", T.RECIPE, "drift")
    client.delete_registered_model_tag("policy", T.RECIPE)

    changes = _events("policy_change")
    assert [(c["user"], c["reason"]) for c in changes] == [(os_user(), "recipe set"),
                                                           (os_user(), "recipe removed")]
    assert changes[1]["old_hash"] == changes[0]["new_hash"] and changes[1]["new_hash"] is None


def test_invalid_recipe_is_refused_before_it_is_written():
    client = gated_client()
    client.create_registered_model("bad")

    with pytest.raises(MlflowException, match="invalid recipe") as err:
        client.set_registered_model_tag("bad", T.RECIPE, "task: [classification\nrules: 3")

    assert err.value.get_http_status_code() == 400
    assert T.RECIPE not in client.get_registered_model("bad").tags
