"""Server path: a real ``mlflow server --registry-store-uri monitor:sqlite:///...``.

One server for the module; each test uses its own registered model.
"""

from __future__ import annotations

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_monitor.gate import tags as T
from helpers.servers import MlflowServer
from helpers.gate import breast_cancer_frames, drifted, recipe_yaml, train_version, write_current

pytestmark = pytest.mark.slow  # an mlflow server subprocess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate_server")
    srv = MlflowServer(
        root,
        registry_store_uri=f"monitor:sqlite:///{root / 'server.db'}",
        env={"MLFLOW_MONITOR_HOME": str(root / "monitor_home")},
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    mlflow.set_tracking_uri(server.url)  # training runs log to the server (reset by conftest)
    mlflow.set_registry_uri(server.url)
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _set_recipe(server, model, recipe):
    """As the operator: a server without auth takes no policy change over REST, so the
    recipe is set through the store (the database), as `mlflow-monitor recipe set` does."""
    MlflowClient(registry_uri=f"monitor:sqlite:///{server.workdir / 'server.db'}").set_registered_model_tag(
        model, T.RECIPE, recipe)


def _alias_url(server):
    return server.url + "/api/2.0/mlflow/registered-models/alias"


def test_rest_alias_set_blocked_with_http_400_and_alias_unchanged(server, client, tmp_path):
    model = "srv-blocked"
    version = train_version(client, model)
    path = write_current(tmp_path, drifted(breast_cancer_frames()[1]))
    _set_recipe(server, model, recipe_yaml(path))

    resp = requests.post(_alias_url(server), json={"name": model, "alias": "champion",
                                                   "version": version}, timeout=120)

    assert resp.status_code == 400
    body = resp.json()
    assert "BLOCKED" in body["message"] and "drift_share < 0.3" in body["message"]
    got = requests.get(_alias_url(server), params={"name": model, "alias": "champion"}, timeout=30)
    assert got.status_code in (400, 404) and "champion" in got.text  # alias does not exist
    mv = client.get_model_version(model, version)
    assert mv.tags[T.VERDICT] == T.BLOCKED
    folder = mv.tags[T.REPORT].split(f"runs:/{mv.run_id}/", 1)[1]
    names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(mv.run_id, folder)}
    assert "summary.json" in names  # written before the 400 came back
    mv = _wait_for_report(client, model, version)  # built by the server's worker, after the response
    assert mv.tags[T.REPORT_STATUS] == "ready" and mv.tags[T.REPORT_HTML] == f"{mv.tags[T.REPORT]}/report.html"
    names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(mv.run_id, folder)}
    assert {"summary.json", "report.html", "snapshot.json"} <= names
    from mlflow_monitor.gate.audit import read_audit_log

    audit = read_audit_log(store_uri=server.registry_store_uri)  # the table in the server's database
    assert audit[-1]["verdict"] == "BLOCKED" and audit[-1]["model_name"] == model


def test_client_alias_set_through_server_passes_when_rules_hold(server, client, tmp_path):
    model = "srv-passing"
    version = train_version(client, model)
    path = write_current(tmp_path, breast_cancer_frames()[1])
    _set_recipe(server, model, recipe_yaml(path))

    client.set_registered_model_alias(model, "champion", version)

    assert str(client.get_model_version_by_alias(model, "champion").version) == version
    mv = client.get_model_version(model, version)
    assert mv.tags[T.VERDICT] == T.PASSED
    assert client.get_run(mv.run_id).data.metrics["monitor/accuracy"] >= 0.8


def test_rest_stage_transition_blocked_when_rule_fails(server, client, tmp_path):
    model = "srv-stage"
    version = train_version(client, model)
    path = write_current(tmp_path, drifted(breast_cancer_frames()[1]))
    _set_recipe(server, model, recipe_yaml(path))

    with pytest.raises(MlflowException) as err:
        client.transition_model_version_stage(model, version, "Production")

    assert "stage:Production" in err.value.message
    assert client.get_model_version(model, version).current_stage == "None"


def test_non_gated_calls_pass_through_the_server(client):
    model = "srv-plain"
    client.create_registered_model(model, description="no recipe")
    run = client.create_run("0")
    mv = client.create_model_version(model, f"runs:/{run.info.run_id}/m", run.info.run_id)
    client.set_model_version_tag(model, mv.version, "team", "risk")
    client.set_registered_model_alias(model, "champion", mv.version)
    client.transition_model_version_stage(model, mv.version, "Production")

    got = client.get_model_version(model, mv.version)
    assert got.tags == {"team": "risk"} and got.current_stage == "Production"
    assert str(client.get_model_version_by_alias(model, "champion").version) == str(mv.version)


def _wait_for_report(client, model, version, timeout=120.0):
    """The version once the server's background worker has linked (or failed) its report."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        mv = client.get_model_version(model, version)
        if mv.tags.get(T.REPORT_STATUS) != "pending" or time.monotonic() > deadline:
            return mv
        time.sleep(0.5)
