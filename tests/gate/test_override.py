"""Break-glass override in a client (OS user): request, four eyes, use once.

The full request -> approve -> use flow with two people runs against a real auth server in
tests/gate/trust/test_trust_server.py; here the client-side rules.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from mlflow_monitor.cli import main
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from mlflow_monitor.gate.authority import os_user
from helpers.gate import (
    breast_cancer_frames,
    drifted,
    gated_client,
    recipe_yaml,
    reference_only_version,
    write_current,
)

MODEL = "override-me"


@pytest.fixture
def client(tmp_path):
    client = gated_client()
    version = reference_only_version(client, MODEL)
    path = write_current(tmp_path, drifted(breast_cancer_frames()[1]))
    # drift only: the version needs no loadable model, and fails a rule (not an error)
    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(path, rules=["drift_share < 0.3"]))
    with pytest.raises(MlflowException, match="FAILED drift_share"):  # sanity: blocked by a rule
        client.set_registered_model_alias(MODEL, "champion", version)
    return client


def _events(event):
    return [r for r in read_audit_log() if r.get("event") == event]


def test_override_request_records_the_os_user_and_is_not_used_before_approval(client, monkeypatch):
    monkeypatch.setenv("USER", "alice.ciso")  # a claim: never the identity
    result = CliRunner().invoke(main, ["override", MODEL, "1", "--reason", "hotfix INC-42"])
    assert result.exit_code == 0, result.output

    with pytest.raises(MlflowException, match="FAILED drift_share"):
        client.set_registered_model_alias(MODEL, "champion", "1")

    tags = client.get_model_version(MODEL, "1").tags
    assert tags[T.OVERRIDE] == "hotfix INC-42" and tags[T.OVERRIDE_USER] == os_user()
    assert tags[T.VERDICT] == T.BLOCKED and T.OVERRIDE_USED not in tags
    [req] = _events("override_requested")
    assert req["user"] == os_user() and req["reason"] == "hotfix INC-42"
    assert "alice.ciso" not in str(read_audit_log())


def test_requester_cannot_approve_their_own_override(client):
    client.set_model_version_tag(MODEL, "1", T.OVERRIDE, "manual tag from the UI")

    result = CliRunner().invoke(main, ["override", MODEL, "1", "--approve"])

    assert result.exit_code != 0 and "four eyes" in result.output
    assert T.OVERRIDE_APPROVED_BY not in client.get_model_version(MODEL, "1").tags
    [refused] = _events("refused_write")
    assert refused["user"] == os_user() and refused["target"] == T.OVERRIDE_APPROVE


def test_override_state_keys_cannot_be_forged_by_tag(client):
    for key, value in [(T.OVERRIDE_USER, "alice.ciso"), (T.OVERRIDE_APPROVED_BY, "bob.risk")]:
        with pytest.raises(MlflowException, match="the gate owns it") as err:
            client.set_model_version_tag(MODEL, "1", key, value)
        assert err.value.get_http_status_code() == 403

    assert not {T.OVERRIDE_USER, T.OVERRIDE_APPROVED_BY} & set(client.get_model_version(MODEL, "1").tags)


def test_override_without_reason_is_rejected_and_sets_nothing(client):
    result = CliRunner().invoke(main, ["override", MODEL, "1", "--reason", "  "])

    assert result.exit_code != 0 and "non-empty reason" in result.output
    assert T.OVERRIDE not in client.get_model_version(MODEL, "1").tags


def test_override_of_missing_version_fails_clearly(client):
    result = CliRunner().invoke(main, ["override", MODEL, "99", "--reason", "x"])

    assert result.exit_code != 0 and "99" in result.output


def test_override_needs_exactly_one_of_reason_and_approve(client):
    result = CliRunner().invoke(main, ["override", MODEL, "1"])

    assert result.exit_code == 2 and "--reason" in result.output
