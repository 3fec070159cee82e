"""The ``monitor:`` store itself: URI handling, enable_gating, delegation, new versions."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_monitor
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.registry_store import MonitorRegistryStore, inner_uri_of
from helpers.gate import breast_cancer_frames, drifted, recipe_yaml, reference_only_version, write_current


def _store(client):
    return client._get_registry_client().store


def test_enable_gating_wraps_current_registry_uri_idempotently_and_restores(tracking_uri):
    before = mlflow.get_registry_uri()

    assert mlflow_monitor.enable_gating() == "monitor:" + before
    assert mlflow_monitor.enable_gating() == "monitor:" + before
    assert isinstance(_store(MlflowClient()), MonitorRegistryStore)

    assert mlflow_monitor.enable_gating(False) == before
    assert not isinstance(_store(MlflowClient()), MonitorRegistryStore)


def test_registry_uri_env_var_selects_monitor_store(monkeypatch, tracking_uri):
    mlflow.set_registry_uri(None)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", "monitor:" + tracking_uri)

    store = _store(MlflowClient())

    assert isinstance(store, MonitorRegistryStore)
    assert type(store.inner).__name__ == "SqlAlchemyStore"


@pytest.mark.parametrize("uri,inner", [
    ("monitor:sqlite:///x.db", "sqlite:///x.db"),
    ("monitor://sqlite:///x.db", "sqlite:///x.db"),
    ("monitor:postgresql://u:p@h/db", "postgresql://u:p@h/db"),
    ("monitor:http://127.0.0.1:5000", "http://127.0.0.1:5000"),
])
def test_inner_uri_parsing(uri, inner):
    assert inner_uri_of(uri) == inner


@pytest.mark.parametrize("uri", ["monitor:", "monitor:monitor:sqlite:///x.db", "sqlite:///x.db"])
def test_bad_monitor_uri_is_rejected_with_clear_error(uri):
    with pytest.raises(MlflowException, match="monitor:"):
        inner_uri_of(uri)


def test_store_repr_never_shows_inner_uri_credentials():
    from mlflow_monitor.gate.registry_store import build_monitor_registry_store

    store = build_monitor_registry_store("monitor:http://user:s3cret@127.0.0.1:9")
    assert "s3cret" not in repr(store) and "user" not in repr(store)


def test_non_gated_calls_are_delegated_unchanged(tracking_uri):
    mlflow_monitor.enable_gating()
    client = MlflowClient()
    client.create_registered_model("plain", tags={"team": "risk"}, description="d")
    run = client.create_run("0")
    mv = client.create_model_version("plain", f"runs:/{run.info.run_id}/m", run.info.run_id,
                                     tags={"k": "v"})
    client.set_model_version_tag("plain", mv.version, "k2", "v2")
    client.set_registered_model_alias("plain", "champion", mv.version)
    client.transition_model_version_stage("plain", mv.version, "Production")
    client.delete_registered_model_alias("plain", "champion")

    got = client.get_model_version("plain", mv.version)
    assert got.tags == {"k": "v", "k2": "v2"} and got.current_stage == "Production"
    assert client.get_registered_model("plain").description == "d"
    assert [m.name for m in client.search_registered_models()] == ["plain"]


def test_new_version_trigger_records_advisory_verdict_without_blocking(tmp_path):
    mlflow_monitor.enable_gating()
    client = MlflowClient()
    client.create_registered_model("nv")
    path = write_current(tmp_path, drifted(breast_cancer_frames()[1]))
    client.set_registered_model_tag(
        "nv", T.RECIPE, recipe_yaml(path, rules=["drift_share < 0.3"], new_versions=True))

    version = reference_only_version(client, "nv")  # creating it runs the advisory check

    mv = client.get_model_version("nv", version)
    assert mv.tags[T.VERDICT] == T.ADVISORY_FAILED and mv.tags[T.TARGET] == "new_version"
    with pytest.raises(MlflowException):
        client.get_model_version_by_alias("nv", "champion")


def test_new_version_not_checked_when_trigger_off(tmp_path):
    mlflow_monitor.enable_gating()
    client = MlflowClient()
    client.create_registered_model("nv2")
    path = write_current(tmp_path, drifted(breast_cancer_frames()[1]))
    client.set_registered_model_tag("nv2", T.RECIPE, recipe_yaml(path, new_versions=False))

    version = reference_only_version(client, "nv2")

    assert T.VERDICT not in client.get_model_version("nv2", version).tags
