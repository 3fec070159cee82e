"""Bad input: each case blocks with a clear error naming the problem, and changes no alias,
stage, tag or description (only the audit log records the attempt)."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.exceptions import MlflowException

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from helpers.gate import (
    FEATURES,
    breast_cancer_frames,
    gated_client,
    recipe_yaml,
    reference_only_version,
    write_current,
)

MODEL = "bad-input"


@pytest.fixture
def client():
    return gated_client()


def _promote_expecting_block(client, version):
    with pytest.raises(MlflowException) as err:
        client.set_registered_model_alias(MODEL, "champion", version)
    assert err.value.get_http_status_code() == 400
    _assert_nothing_changed(client, version)
    records = read_audit_log()
    assert records[-1]["verdict"] == "BLOCKED" and records[-1]["error"]
    return err.value.message


def _assert_nothing_changed(client, version):
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias(MODEL, "champion")
    mv = client.get_model_version(MODEL, version)
    assert not [k for k in mv.tags if k.startswith(T.PREFIX)]
    assert not mv.description
    assert mv.current_stage == "None"


def _with_current(client, tmp_path, frame, **kwargs):
    path = write_current(tmp_path, frame)
    client.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(path, **kwargs))


def _holdout():
    return breast_cancer_frames()[1]


def test_promotion_blocked_when_no_reference_logged(client, tmp_path):
    version = reference_only_version(client, MODEL, log_reference=False)
    _with_current(client, tmp_path, _holdout())

    message = _promote_expecting_block(client, version)

    assert "no reference logged" in message and "log_reference" in message


def test_promotion_blocked_when_current_data_misses_a_column(client, tmp_path):
    version = reference_only_version(client, MODEL)
    _with_current(client, tmp_path, _holdout().drop(columns=["mean area"]))

    message = _promote_expecting_block(client, version)

    assert "mean area" in message


def test_promotion_blocked_on_dtype_mismatch(client, tmp_path):
    version = reference_only_version(client, MODEL)
    current = _holdout()
    current["mean texture"] = current["mean texture"].map(lambda v: f"t{v:.1f}")
    _with_current(client, tmp_path, current)

    message = _promote_expecting_block(client, version)

    # pandas 3 names a string column's dtype "str", pandas 2 (the floor MLflow's) "object"
    assert "mean texture" in message and "float64" in message and ("str" in message or "object" in message)


def test_promotion_blocked_on_empty_current_data(client, tmp_path):
    version = reference_only_version(client, MODEL)
    _with_current(client, tmp_path, _holdout().iloc[:0])

    message = _promote_expecting_block(client, version)

    assert "empty" in message.lower() or "0 rows" in message


def test_promotion_blocked_on_all_nan_column(client, tmp_path):
    version = reference_only_version(client, MODEL)
    current = _holdout()
    current["mean smoothness"] = np.nan
    _with_current(client, tmp_path, current)

    message = _promote_expecting_block(client, version)

    assert "mean smoothness" in message and "NaN" in message


def test_promotion_blocked_on_inf_values(client, tmp_path):
    version = reference_only_version(client, MODEL)
    current = _holdout()
    current.loc[3, "mean radius"] = np.inf
    _with_current(client, tmp_path, current)

    message = _promote_expecting_block(client, version)

    assert "mean radius" in message and "inf" in message.lower()


def test_promotion_blocked_when_performance_rule_has_no_target(client, tmp_path):
    version = reference_only_version(client, MODEL)
    _with_current(client, tmp_path, _holdout().drop(columns=["target"]))

    message = _promote_expecting_block(client, version)

    assert "target" in message


def test_promotion_blocked_when_model_fails_to_load(client, tmp_path):
    version = reference_only_version(client, MODEL)
    _with_current(client, tmp_path, _holdout())

    message = _promote_expecting_block(client, version)

    assert "failed to load or predict" in message and f"candidate version {version}" in message


def test_promotion_blocked_when_model_fails_to_predict(client, tmp_path):
    from helpers.gate import train_version

    train, _ = breast_cancer_frames()
    # trained on two features, asked to predict on five: sklearn raises at predict time
    version = train_version(client, MODEL, features=FEATURES[:2], frame=train)
    _with_current(client, tmp_path, _holdout())

    message = _promote_expecting_block(client, version)

    assert "failed to load or predict" in message


def _write_past_the_gate(name, key, value):
    """A tag written straight into the database (the store refuses invalid recipes)."""
    import mlflow

    inner = mlflow.get_registry_uri().split(":", 1)[1]
    mlflow.MlflowClient(registry_uri=inner).set_registered_model_tag(name, key, value)


def test_promotion_blocked_when_recipe_is_unreadable(client):
    version = reference_only_version(client, MODEL)
    _write_past_the_gate(MODEL, T.RECIPE, "task: [classification\nrules: 3")

    message = _promote_expecting_block(client, version)

    assert "RecipeError" in message and "YAML" in message


def test_recipe_tag_holding_a_path_is_not_read_as_a_file(client, tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("task: drift\ncurrent: {path: x.csv}\n")
    version = reference_only_version(client, MODEL)
    _write_past_the_gate(MODEL, T.RECIPE, str(secret))

    message = _promote_expecting_block(client, version)

    assert "RecipeError" in message and "single line" in message
    assert "x.csv" not in message


def test_on_error_allow_lets_promotion_through_with_warning_verdict(client, tmp_path):
    version = reference_only_version(client, MODEL, log_reference=False)
    _with_current(client, tmp_path, _holdout(), on_error="allow")

    client.set_registered_model_alias(MODEL, "champion", version)

    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == version
    mv = client.get_model_version(MODEL, version)
    assert mv.tags[T.VERDICT] == T.ERROR_ALLOWED
    assert "no reference logged" in mv.tags[T.REASON]


def test_html_in_column_and_model_names_does_not_reach_messages_raw(client, tmp_path):
    evil_col = "<img src=x onerror=alert(1)>"
    train, holdout = breast_cancer_frames()
    reference = train.rename(columns={"mean area": evil_col})
    version = reference_only_version(client, MODEL, reference)
    _with_current(client, tmp_path, holdout)  # the evil column is missing from current

    message = _promote_expecting_block(client, version)

    assert "&lt;img src=x onerror=alert(1)>" in message
    assert "<img" not in message
