"""The bounded MLflow client: one request per call, a cool-down after a transient failure, the run's own store."""

from __future__ import annotations

import mlflow
import pytest
from helpers.servers import free_port
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_monitor.bounded_client import BoundedClient, StoreUnavailable, store_uri_for_run
from mlflow_monitor.metrics import get_pipeline, reset_pipeline


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_transient_failure_starts_a_cooldown_during_which_calls_fail_at_once(scripted_server):
    clock = _Clock()
    client = BoundedClient(cooldown_s=30.0, clock=clock)
    scripted_server.answer(401, "Unauthorized")
    with pytest.raises(StoreUnavailable) as first:
        client.set_run_tag("r", "k", "v", scripted_server.url)
    assert not first.value.skipped and not client.available(scripted_server.url)
    with pytest.raises(StoreUnavailable) as second:
        client.set_run_tag("r", "k", "v", scripted_server.url)
    assert second.value.skipped and len(scripted_server.requests) == 1  # not even tried
    clock.now += 30.0
    client.set_run_tag("r", "k", "v", scripted_server.url)  # the store is back: 200
    assert client.available(scripted_server.url) and len(scripted_server.requests) == 2
    assert scripted_server.requests[1]["json"] == {"run_id": "r", "run_uuid": "r", "key": "k", "value": "v"}


def test_a_permanent_refusal_raises_as_it_is_and_keeps_the_store_available(scripted_server):
    client = BoundedClient()
    scripted_server.answer(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 'r' not found"})
    with pytest.raises(MlflowException) as exc:
        client.run_tags("r", scripted_server.url)
    assert exc.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert client.available(scripted_server.url)


def test_an_unreachable_server_is_one_bounded_try():
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable) as exc:
        BoundedClient(timeout_s=2.0).run_tags("r", uri)
    assert uri in str(exc.value)


def test_credentials_in_the_store_uri_never_reach_the_error_text():
    uri = f"http://user:s3cret@127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable) as exc:
        BoundedClient(timeout_s=2.0).set_run_tag("r", "k", "v", uri)
    assert "s3cret" not in str(exc.value)


def test_tags_on_a_sqlite_store_go_through_mlflow_client(tracking_uri):
    run_id = MlflowClient().create_run("0").info.run_id
    client = BoundedClient()
    client.set_run_tag(run_id, "mlflow_monitor.health.nan_loss", "nan at step 3", tracking_uri)
    assert client.run_tags(run_id, tracking_uri)["mlflow_monitor.health.nan_loss"] == "nan at step 3"
    with pytest.raises(MlflowException):  # no such run: permanent, raised as it is
        client.set_run_tag("0" * 32, "k", "v", tracking_uri)
    assert client.available(tracking_uri)


def test_store_uri_for_run_is_the_pipeline_binding_else_the_current_uri(tracking_uri):
    reset_pipeline()
    assert store_uri_for_run("r") == tracking_uri  # no pipeline: never started by the lookup
    get_pipeline().bind_run("r", "http://bound.invalid")
    mlflow.set_tracking_uri("sqlite:///elsewhere.db")
    assert store_uri_for_run("r") == "http://bound.invalid"
    assert store_uri_for_run("other") == "sqlite:///elsewhere.db"
