"""The version's monitoring-run link (``mlflow_monitor.prod.run_id``) through the gate's
own path, against a real ``mlflow server --app-name basic-auth --registry-store-uri
monitor:...``: the serving identity (EDIT on the model and its experiment, named in the
recipe's ``current.production.serving_users``) links its run by the ordinary set-tag
call; a promoter with the same grants but not named, an editor of the experiment alone,
a run that is not the version's monitoring run, a second run carrying the tag, and a
re-link to another run are refused, audited, and change nothing."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from helpers.auth_server import ADMIN, AuthServer, password_of
from helpers.gate import reference_only_version
from mlflow_monitor.gate.audit import read_audit_log
from mlflow_monitor.production.monitoring_run import monitoring_run_id
from mlflow_monitor.windows.signing import ENV_KEY
from mlflow_monitor.windows.stored import PROD_RUN_TAG, PROD_TAG, find_monitoring_run

pytestmark = pytest.mark.slow  # an mlflow server subprocess

EVIDENCE_KEY = "the-serving-identity-and-the-gate-share-this-0123456789"  # the gate (server) has it


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust_prod_run")
    srv = AuthServer(root, registry_store_uri=f"monitor:sqlite:///{root / 'server.db'}",
                     env={"MLFLOW_MONITOR_HOME": str(root / "monitor_home"), ENV_KEY: EVIDENCE_KEY})
    srv.start()
    for user in ("serving", "promoter", "editor"):
        srv.create_user(user)
    yield srv
    srv.stop()


def _login(monkeypatch, server, user: str) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password_of(user))
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _grant_experiment(server, user: str, experiment_id: str, permission: str = "EDIT") -> None:
    r = server.api(ADMIN, "POST", "3.0/mlflow/users/permissions/grant",
                   json={"username": user, "resource_type": "experiment", "resource_id": experiment_id,
                         "permission": permission})
    r.raise_for_status()


RECIPE = ("task: drift\ncurrent: {production: {window: 1d, min_rows: 10, serving_users: [serving]}}\n"
          "rules: [drift_share < 0.3]\n")


def _model(server, monkeypatch, name: str, champion: bool = False) -> tuple[str, str]:
    """Version 1 of ``name`` (by the admin), with a recipe (set by the admin) naming
    ``serving`` as its serving user; serving and promoter: EDIT on the model and the
    experiment; editor: EDIT on the experiment only. ``champion``: the version holds the
    alias ``champion``, set before the recipe (so not gated). Returns the version and the
    experiment id."""
    admin = _login(monkeypatch, server, ADMIN)
    mlflow.set_experiment(f"exp-{name}")  # an experiment of its own: grants are per experiment
    version = reference_only_version(admin, name)
    if champion:
        admin.set_registered_model_alias(name, "champion", version)
    experiment_id = admin.get_run(admin.get_model_version(name, version).run_id).info.experiment_id
    r = server.api(ADMIN, "POST", "2.0/mlflow/registered-models/set-tag",
                   json={"name": name, "key": "mlflow_monitor.recipe", "value": RECIPE})
    assert r.status_code == 200, r.text
    for user in ("serving", "promoter"):
        server.grant(user, name, "EDIT")
    for user in ("serving", "promoter", "editor"):
        _grant_experiment(server, user, experiment_id)
    return version, experiment_id


def _set_version_tag(server, user, name, version, value):
    return server.api(user, "POST", "2.0/mlflow/model-versions/set-tag",
                      json={"name": name, "version": version, "key": PROD_RUN_TAG, "value": value})


def _tags(server, monkeypatch, name, version) -> dict:
    return dict(_login(monkeypatch, server, ADMIN).get_model_version(name, version).tags)


def _audit(server, event, name):
    return [r for r in read_audit_log(store_uri=server.registry_store_uri)
            if r.get("event") == event and r.get("model_name") == name]


def test_the_serving_identity_links_its_monitoring_run_and_the_gate_trusts_only_it(server, monkeypatch):
    name = "prod-link"
    version, experiment_id = _model(server, monkeypatch, name)
    # before serving starts, a promoter (EDIT on the model and the experiment, not a serving
    # user of the recipe) writes a run of its own for the version and tries to link it
    promoter = _login(monkeypatch, server, "promoter")
    planted = promoter.create_run(experiment_id, tags={PROD_TAG: f"{name}/{version}"}).info.run_id
    resp = _set_version_tag(server, "promoter", name, version, planted)
    assert resp.status_code == 403 and "serving user named in the model's recipe" in resp.json()["message"], resp.text
    assert PROD_RUN_TAG not in _tags(server, monkeypatch, name, version)
    # ... and without a link the gate takes no tagged run as evidence, however unique
    admin = _login(monkeypatch, server, ADMIN)
    with pytest.raises(LookupError, match="no mlflow_monitor.prod.run_id link"):
        find_monitoring_run(admin, name, version, strict=True)
    promoter.delete_run(planted)
    serving = _login(monkeypatch, server, "serving")
    run_id = monitoring_run_id(serving, name, version)  # what `mlflow-monitor serve` does at start
    assert _tags(server, monkeypatch, name, version)[PROD_RUN_TAG] == run_id
    [linked] = _audit(server, "prod_run_linked", name)
    assert linked["user"] == "serving" and linked["run_id"] == run_id
    # an experiment editor forges an older-looking run with the same run tag ...
    editor = _login(monkeypatch, server, "editor")
    forged = editor.create_run(experiment_id, start_time=1, tags={PROD_TAG: f"{name}/{version}"}).info.run_id
    # ... and cannot point the version at it: no EDIT on the model (MLflow's auth refuses
    # it before the store; the store's own check is the same rule)
    resp = _set_version_tag(server, "editor", name, version, forged)
    assert resp.status_code == 403, resp.text
    # nor can the serving identity re-point it: the first link stands
    resp = _set_version_tag(server, "serving", name, version, forged)
    assert resp.status_code == 403 and "the first link stands" in resp.json()["message"], resp.text
    assert _tags(server, monkeypatch, name, version)[PROD_RUN_TAG] == run_id
    refused = _audit(server, "refused_write", name)
    assert [r["user"] for r in refused] == ["promoter", "serving"]
    # the gate's evidence follows the link, not the forged run (the two runs would be refused)
    admin = _login(monkeypatch, server, ADMIN)
    assert find_monitoring_run(admin, name, version, strict=True) == run_id
    # setting the same link again is a no-op, not an error
    assert _set_version_tag(server, "serving", name, version, run_id).status_code == 200


def test_a_link_without_proof_is_refused_and_changes_nothing(server, monkeypatch):
    name = "prod-link-proof"
    version, experiment_id = _model(server, monkeypatch, name)
    serving = _login(monkeypatch, server, "serving")
    plain = serving.create_run(experiment_id).info.run_id
    other = serving.create_run(experiment_id, tags={PROD_TAG: f"{name}/999"}).info.run_id
    for run_id, words in ((plain, "is not tagged"), (other, "is not tagged"), ("no-such-run", "no such run")):
        resp = _set_version_tag(server, "serving", name, version, run_id)
        assert resp.status_code == 400, resp.text
        assert words in resp.json()["message"]
    # two runs carry the version's run tag: the gate will not pick one
    first = serving.create_run(experiment_id, tags={PROD_TAG: f"{name}/{version}"}).info.run_id
    serving.create_run(experiment_id, tags={PROD_TAG: f"{name}/{version}"})
    resp = _set_version_tag(server, "serving", name, version, first)
    assert resp.status_code == 403 and "links only a unique monitoring run" in resp.json()["message"], resp.text
    assert PROD_RUN_TAG not in _tags(server, monkeypatch, name, version)
    assert len(_audit(server, "refused_write", name)) == 4
    assert not _audit(server, "prod_run_linked", name)


def test_an_experiment_editor_cannot_write_evidence_into_the_real_monitoring_run(server, monkeypatch):
    """The serving identity captures drifted traffic, signed with the evidence key the gate
    (this server) holds. An editor of the experiment -- who can write artifacts into the
    monitoring run itself -- replaces the window's merged rows with flattering ones. The
    gate ignores them (no valid signature) and blocks the promotion on the real traffic."""
    import time

    import mlflow_monitor
    from helpers.gate import breast_cancer_frames, drifted
    from helpers.production import forge_window_rows
    from mlflow.exceptions import MlflowException
    from mlflow_monitor.gate import tags as T
    from mlflow_monitor.windows.stored import list_windows, read_window_rows

    name = "prod-signed"
    champion, _ = _model(server, monkeypatch, name, champion=True)
    _, holdout = breast_cancer_frames()
    features = holdout.drop(columns=["target"])
    # the serving identity, with the key: drifted traffic, signed
    _login(monkeypatch, server, "serving")
    monkeypatch.setenv(ENV_KEY, EVIDENCE_KEY)
    mlflow_monitor.log_predictions(drifted(holdout).drop(columns=["target"]), holdout["target"],
                                   model_uri=f"models:/{name}@champion", timestamps=time.time() - 600, window="5m")
    monkeypatch.delenv(ENV_KEY)
    run_id = _tags(server, monkeypatch, name, champion)[PROD_RUN_TAG]
    # the editor (EDIT on the experiment only, no key) overwrites the merged rows
    editor = _login(monkeypatch, server, "editor")
    [window] = list_windows(editor, run_id, since=time.time() - 86_400, until=time.time() + 1)
    fake = forge_window_rows(editor, run_id, window, features)  # MLflow allows the upload
    assert read_window_rows(editor, run_id, window)["mean radius"].tolist()[:5] == fake["mean radius"].tolist()[:5]
    # the promoter promotes a candidate; the gate in the server reads only signed evidence
    promoter = _login(monkeypatch, server, "promoter")
    candidate = reference_only_version(promoter, name)
    with pytest.raises(MlflowException, match="BLOCKED"):
        promoter.set_registered_model_alias(name, "champion", candidate)
    mv = _login(monkeypatch, server, ADMIN).get_model_version(name, candidate)
    assert mv.tags[T.VERDICT] == T.BLOCKED and "drift_share" in mv.tags[T.REASON], mv.tags
