"""Break-glass override: one promotion through, recorded, then consumed."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from mlflow.exceptions import MlflowException

from mlflow_monitor.cli import main
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
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


def test_override_lets_exactly_one_blocked_promotion_through_and_is_recorded(client, monkeypatch):
    monkeypatch.setenv("MLFLOW_MONITOR_USER", "oncall-alice")
    result = CliRunner().invoke(main, ["override", MODEL, "1", "--reason", "hotfix INC-42"])
    assert result.exit_code == 0, result.output

    client.set_registered_model_alias(MODEL, "champion", "1")

    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
    mv = client.get_model_version(MODEL, "1")
    assert mv.tags[T.VERDICT] == T.OVERRIDDEN
    assert "hotfix INC-42" in mv.tags[T.OVERRIDE_USED] and "oncall-alice" in mv.tags[T.OVERRIDE_USED]
    assert T.OVERRIDE not in mv.tags and T.OVERRIDE_USER not in mv.tags
    assert "override" in mv.description
    verdicts = [(r["verdict"], r.get("override_reason"), r["user"]) for r in read_audit_log()]
    assert verdicts[-2:] == [("OVERRIDE_REQUESTED", "hotfix INC-42", "oncall-alice"),
                             ("OVERRIDDEN", "hotfix INC-42", "oncall-alice")]
    # consumed: the next gated promotion is evaluated again, and blocked
    with pytest.raises(MlflowException):
        client.transition_model_version_stage(MODEL, "1", "Production")
    assert client.get_model_version(MODEL, "1").current_stage == "None"


def test_override_set_as_version_tag_is_honoured_once(client):
    client.set_model_version_tag(MODEL, "1", T.OVERRIDE, "manual tag from the UI")

    client.set_registered_model_alias(MODEL, "champion", "1")
    with pytest.raises(MlflowException):
        client.set_registered_model_alias(MODEL, "champion", "1")

    assert client.get_model_version(MODEL, "1").tags[T.VERDICT] == T.BLOCKED
    assert "manual tag from the UI" in client.get_model_version(MODEL, "1").tags[T.OVERRIDE_USED]


def test_override_without_reason_is_rejected_and_sets_nothing(client):
    result = CliRunner().invoke(main, ["override", MODEL, "1", "--reason", "  "])

    assert result.exit_code != 0 and "non-empty reason" in result.output
    assert T.OVERRIDE not in client.get_model_version(MODEL, "1").tags


def test_override_of_missing_version_fails_clearly(client):
    result = CliRunner().invoke(main, ["override", MODEL, "99", "--reason", "x"])

    assert result.exit_code != 0 and "99" in result.output
