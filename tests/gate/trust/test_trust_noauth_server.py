"""``mlflow server`` without auth: callers have no identity, so no REST client may change
the policy, approve an override, or rename/delete a gated model; a header naming a user
is not an identity. Operators do those through the CLI against the database."""

from __future__ import annotations

import pytest
import requests
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_monitor.cli import main
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from mlflow_monitor.gate.authority import os_user
from helpers.servers import MlflowServer

pytestmark = pytest.mark.slow  # an mlflow server subprocess


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("noauth_server")
    srv = MlflowServer(root, registry_store_uri=f"monitor:sqlite:///{root / 'server.db'}",
                       env={"MLFLOW_MONITOR_HOME": str(root / "monitor_home")})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def operator(server, monkeypatch):
    """The operator's view: the registry database itself, through ``monitor:``."""
    db = f"sqlite:///{server.workdir / 'server.db'}"
    import mlflow

    mlflow.set_registry_uri(db)  # what the CLI uses (reset by conftest)
    mlflow.set_tracking_uri(db)
    return MlflowClient(tracking_uri=db, registry_uri=f"monitor:{db}")


def _api(server, method, path, **kwargs):
    return requests.request(method, f"{server.url}/api/2.0/mlflow/{path}", timeout=120,
                            auth=("alice.ciso", "any"), **kwargs)  # a claimed user: ignored


def _audit(server, model):
    return [r for r in read_audit_log(store_uri=server.registry_store_uri)  # the table in the server's database
            if r.get("model_name") == model]


def test_anonymous_rest_callers_cannot_change_policy_approve_or_move_a_gated_model(server, operator):
    name = "noauth-gated"
    run = operator.create_run("0")
    operator.create_registered_model(name)
    operator.create_model_version(name, f"runs:/{run.info.run_id}/m", run.info.run_id)
    result = CliRunner().invoke(main, ["recipe", "set", name, "drift"])  # the operator: allowed
    assert result.exit_code == 0, result.output

    attempts = {
        "recipe": _api(server, "POST", "registered-models/set-tag",
                       json={"name": name, "key": T.RECIPE, "value": "classification"}),
        "unrecipe": _api(server, "DELETE", "registered-models/delete-tag",
                         json={"name": name, "key": T.RECIPE}),
        "request": _api(server, "POST", "model-versions/set-tag",
                        json={"name": name, "version": "1", "key": T.OVERRIDE, "value": "INC-3"}),
        "approve": _api(server, "POST", "model-versions/set-tag",
                        json={"name": name, "version": "1", "key": T.OVERRIDE_APPROVE, "value": "y"}),
        "rename": _api(server, "POST", "registered-models/rename", json={"name": name, "new_name": "x"}),
        "delete": _api(server, "DELETE", "registered-models/delete", json={"name": name}),
    }

    statuses = {k: r.status_code for k, r in attempts.items()}
    assert statuses == {"recipe": 403, "unrecipe": 403, "request": 200, "approve": 403,
                        "rename": 403, "delete": 403}, {k: r.text[:200] for k, r in attempts.items()}
    assert "runs without auth" in attempts["recipe"].json()["message"]
    model = operator.get_registered_model(name)
    assert model.tags[T.RECIPE] == "drift"
    tags = operator.get_model_version(name, "1").tags
    assert tags[T.OVERRIDE_USER] == "anonymous" and T.OVERRIDE_APPROVED_BY not in tags
    records = _audit(server, name)
    # the header's alice.ciso is nobody; the operator's own setup (OS user, through the
    # store) is in the same audit table now
    assert {r["user"] for r in records if r["event"] == "refused_write"} == {None}
    assert "alice.ciso" not in {r["user"] for r in records}
    assert [r["event"] for r in records].count("refused_write") == 5

    # the operator approves with the CLI against the database (a different person)
    approved = CliRunner().invoke(main, ["override", name, "1", "--approve"])
    assert approved.exit_code == 0, approved.output
    assert operator.get_model_version(name, "1").tags[T.OVERRIDE_APPROVED_BY] == os_user()
