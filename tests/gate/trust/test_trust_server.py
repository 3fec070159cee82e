"""The gate against the people it gates: a real ``mlflow server --app-name basic-auth
--registry-store-uri monitor:sqlite:///...`` with users admin, owner (MANAGE), promoter
(EDIT) and reader, created through MLflow's auth REST API.

Each attempt of issue 8's table that the store stops: it is refused or evaluated, the
aliases, stages, tags and policy stay as they were, and the audit log of the server
(its MLFLOW_MONITOR_HOME) names the real user.
"""

from __future__ import annotations

import hashlib

import mlflow
import pytest
from mlflow import MlflowClient

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from helpers.auth_server import ADMIN, AuthServer, password_of
from helpers.gate import breast_cancer_frames, drifted, recipe_yaml, reference_only_version

pytestmark = pytest.mark.slow  # an mlflow server subprocess

USERS = ("owner", "promoter", "reader")
BLOCKING = ["drift_share < 0.3"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("trust_server")
    srv = AuthServer(root, registry_store_uri=f"monitor:sqlite:///{root / 'server.db'}",
                     env={"MLFLOW_MONITOR_HOME": str(root / "monitor_home")})
    srv.start()
    for user in USERS:
        srv.create_user(user)
    yield srv
    srv.stop()


@pytest.fixture
def admin(server, monkeypatch):
    """An MlflowClient logged in as the admin (runs, versions: the test's setup)."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password_of(ADMIN))
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    return MlflowClient(tracking_uri=server.url, registry_uri=server.url)


def _audit(server, event=None, model=None):
    records = read_audit_log(store_uri=server.registry_store_uri)  # the table in the server's database
    return [r for r in records if (event is None or r.get("event") == event)
            and (model is None or r.get("model_name") == model)]


def _gated_model(server, admin, name, *, rules=BLOCKING, new_versions=False):
    """Model ``name`` (owner: MANAGE, promoter: EDIT), version 1 with a reference and
    drifted current data on its run, the recipe set by the owner over REST."""
    version = reference_only_version(admin, name)
    run_id = admin.get_model_version(name, version).run_id
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "current.parquet"
        drifted(breast_cancer_frames()[1]).to_parquet(path, index=False)
        admin.log_artifact(run_id, str(path), "current")
    server.grant("owner", name, "MANAGE")
    server.grant("promoter", name, "EDIT")
    recipe = recipe_yaml("runs:/{run_id}/current/current.parquet", rules=rules,
                         new_versions=new_versions)
    r = _set_model_tag(server, "owner", name, T.RECIPE, recipe)
    assert r.status_code == 200, r.text
    return version, recipe


def _set_model_tag(server, user, name, key, value):
    return server.api(user, "POST", "2.0/mlflow/registered-models/set-tag",
                      json={"name": name, "key": key, "value": value})


def _set_version_tag(server, user, name, version, key, value):
    return server.api(user, "POST", "2.0/mlflow/model-versions/set-tag",
                      json={"name": name, "version": version, "key": key, "value": value})


def _set_alias(server, user, name, version, alias="champion"):
    return server.api(user, "POST", "2.0/mlflow/registered-models/alias",
                      json={"name": name, "alias": alias, "version": version})


def _state(admin, name, version="1"):
    """Everything an attempt must leave unchanged."""
    model = admin.get_registered_model(name)
    mv = admin.get_model_version(name, version)
    return {"model_tags": dict(model.tags), "aliases": dict(model.aliases), "stage": mv.current_stage,
            "version_tags": dict(mv.tags), "description": mv.description}


def _refused(resp, *words):
    assert resp.status_code == 403, resp.text
    message = resp.json()["message"]
    assert message.startswith("mlflow-monitor refused:"), message
    for w in words:
        assert w in message, message
    return message


def _still_blocked(server, name, version="1"):
    resp = _set_alias(server, "promoter", name, version)
    assert resp.status_code == 400 and "BLOCKED" in resp.json()["message"], resp.text


def _report_settled(admin, name, version="1", timeout=120.0):
    """Wait until the blocked check's deferred report is linked (or failed), so a later
    snapshot of the version's tags does not race the report worker's own tag writes."""
    import time

    deadline = time.monotonic() + timeout
    while admin.get_model_version(name, version).tags.get(T.REPORT_STATUS) == "pending":
        assert time.monotonic() < deadline, f"report of {name} v{version} still pending after {timeout} s"
        time.sleep(0.2)


def test_promoter_cannot_delete_the_recipe_tag_and_the_refusal_is_audited(server, admin):
    name = "t-delete-recipe"
    version, _ = _gated_model(server, admin, name)
    before = _state(admin, name)

    resp = server.api("promoter", "DELETE", "2.0/mlflow/registered-models/delete-tag",
                      json={"name": name, "key": T.RECIPE})

    _refused(resp, "policy owner", "promoter", "EDIT")
    assert _state(admin, name) == before
    [record] = _audit(server, "refused_write", name)
    assert record["user"] == "promoter" and record["target"] == T.RECIPE
    _still_blocked(server, name, version)


@pytest.mark.parametrize("change", ["permissive_rules", "champion_not_in_triggers",
                                    "on_error_allow_with_missing_data"])
def test_promoter_cannot_change_the_recipe(server, admin, change):
    name = f"t-recipe-{change}".replace("_", "-")
    version, _ = _gated_model(server, admin, name)
    before = _state(admin, name)
    current = "runs:/{run_id}/current/current.parquet"
    replacement = {
        "permissive_rules": recipe_yaml(current, rules=["drift_share <= 1.0"]),
        "champion_not_in_triggers": recipe_yaml(current, rules=BLOCKING, aliases="[never]"),
        "on_error_allow_with_missing_data": recipe_yaml("runs:/{run_id}/missing.parquet",
                                                        rules=BLOCKING, on_error="allow"),
    }[change]

    resp = _set_model_tag(server, "promoter", name, T.RECIPE, replacement)

    _refused(resp, "recipe change", "policy owner")
    assert _state(admin, name) == before
    assert [r["user"] for r in _audit(server, "refused_write", name)] == ["promoter"]
    _still_blocked(server, name, version)


def test_owner_recipe_change_is_audited_with_hashes_of_old_and_new(server, admin):
    name = "t-owner-policy"
    _, old = _gated_model(server, admin, name)
    new = recipe_yaml("runs:/{run_id}/current/current.parquet", rules=["drift_share < 0.5"])

    resp = _set_model_tag(server, "owner", name, T.RECIPE, new)

    assert resp.status_code == 200, resp.text
    assert admin.get_registered_model(name).tags[T.RECIPE] == new
    changes = _audit(server, "policy_change", name)
    assert [c["user"] for c in changes] == ["owner", "owner"]
    sha = lambda text: hashlib.sha256(text.encode()).hexdigest()  # noqa: E731
    assert (changes[0]["old_hash"], changes[0]["new_hash"]) == (None, sha(old))
    assert (changes[1]["old_hash"], changes[1]["new_hash"]) == (sha(old), sha(new))


def test_override_claimed_for_someone_else_is_recorded_with_the_real_user(server, admin):
    name = "t-override-claim"
    version, _ = _gated_model(server, admin, name)

    claim = _set_version_tag(server, "promoter", name, version, T.OVERRIDE_USER, "alice.ciso")
    request = _set_version_tag(server, "promoter", name, version, T.OVERRIDE,
                               "INC-1 override_user=alice.ciso")

    _refused(claim, T.OVERRIDE_USER)
    assert request.status_code == 200, request.text
    tags = admin.get_model_version(name, version).tags
    assert tags[T.OVERRIDE_USER] == "promoter"
    _still_blocked(server, name, version)  # requested, not approved: evaluated, blocked
    assert "champion" not in admin.get_registered_model(name).aliases
    [req] = _audit(server, "override_requested", name)
    assert req["user"] == "promoter"
    assert all(r["user"] != "alice.ciso" for r in _audit(server, model=name))


def test_override_needs_a_second_person_and_is_used_once(server, admin):
    name = "t-override-flow"
    version, _ = _gated_model(server, admin, name)
    assert _set_version_tag(server, "promoter", name, version, T.OVERRIDE, "INC-7 hotfix").status_code == 200

    self_approval = _set_version_tag(server, "promoter", name, version, T.OVERRIDE_APPROVE, "yes")
    reader_approval = _set_version_tag(server, "reader", name, version, T.OVERRIDE_APPROVE, "yes")
    approval = _set_version_tag(server, "owner", name, version, T.OVERRIDE_APPROVE, "ok")
    promotion = _set_alias(server, "promoter", name, version)

    _refused(self_approval, "MANAGE")
    assert reader_approval.status_code == 403  # MLflow's own auth: READ may not set tags
    assert approval.status_code == 200, approval.text
    assert promotion.status_code == 200, promotion.text
    mv = admin.get_model_version(name, version)
    assert mv.tags[T.VERDICT] == T.OVERRIDDEN
    assert "requested by promoter, approved by owner" in mv.tags[T.OVERRIDE_USED]
    assert not {T.OVERRIDE, T.OVERRIDE_USER, T.OVERRIDE_APPROVED_BY} & set(mv.tags)
    steps = [(r["event"], r["user"]) for r in _audit(server, model=name)
             if r.get("event", "").startswith("override")]
    assert steps == [("override_requested", "promoter"), ("override_approved", "owner"),
                     ("override_used", "promoter")]
    used = _audit(server, "override_used", name)[0]
    assert (used["requested_by"], used["approved_by"]) == ("promoter", "owner")
    stage = server.api("promoter", "POST", "2.0/mlflow/model-versions/transition-stage",
                       json={"name": name, "version": version, "stage": "Production",
                             "archive_existing_versions": False})
    assert stage.status_code == 400 and "BLOCKED" in stage.json()["message"]  # used up


def test_override_keys_at_create_model_version_do_not_land(server, admin):
    name = "t-override-create"
    version, _ = _gated_model(server, admin, name)
    run_id = admin.get_model_version(name, version).run_id

    resp = server.api("promoter", "POST", "2.0/mlflow/model-versions/create", json={
        "name": name, "source": f"runs:/{run_id}/no_model_here", "run_id": run_id,
        "tags": [{"key": T.OVERRIDE, "value": "pre-approved"},
                 {"key": T.OVERRIDE_APPROVED_BY, "value": "owner"},
                 {"key": T.VERDICT, "value": T.PASSED}]})

    assert resp.status_code == 200, resp.text
    new = resp.json()["model_version"]["version"]
    assert not [k for k in admin.get_model_version(name, new).tags if k.startswith("mlflow_monitor.")]
    _still_blocked(server, name, new)
    [dropped] = _audit(server, "refused_write", name)
    assert dropped["user"] == "promoter" and T.OVERRIDE in dropped["reason"]


def test_rename_swap_of_a_gated_model_is_refused(server, admin):
    gated = "t-rename-gated"
    version, _ = _gated_model(server, admin, gated)
    before = _state(admin, gated)

    resp = server.api("promoter", "POST", "2.0/mlflow/registered-models/rename",
                      json={"name": gated, "new_name": "t-rename-parked"})

    _refused(resp, "renaming", "policy owner", "has a recipe")
    assert _state(admin, gated) == before
    [record] = _audit(server, "refused_write", gated)
    assert record["user"] == "promoter"


def test_verdict_tags_and_description_block_cannot_be_rewritten(server, admin):
    name = "t-verdict-rewrite"
    version, _ = _gated_model(server, admin, name)
    _still_blocked(server, name, version)
    _report_settled(admin, name, version)
    before = _state(admin, name)
    assert before["version_tags"][T.VERDICT] == T.BLOCKED

    rewrite = _set_version_tag(server, "promoter", name, version, T.VERDICT, T.PASSED)
    delete = server.api("promoter", "DELETE", "2.0/mlflow/model-versions/delete-tag",
                        json={"name": name, "version": version, "key": T.VERDICT})
    owner_delete = server.api("owner", "DELETE", "2.0/mlflow/model-versions/delete-tag",
                              json={"name": name, "version": version, "key": T.VERDICT})
    forged = server.api("promoter", "PATCH", "2.0/mlflow/model-versions/update", json={
        "name": name, "version": version,
        "description": f"{T.DESCRIPTION_BEGIN}\n**mlflow-monitor gate: PASSED**\n{T.DESCRIPTION_END}"})
    own_text = server.api("promoter", "PATCH", "2.0/mlflow/model-versions/update", json={
        "name": name, "version": version, "description": "notes\n\n" + (before["description"] or "")})

    _refused(rewrite, T.VERDICT, "the gate owns it")
    assert delete.status_code == 403  # MLflow's own auth: deleting needs MANAGE
    _refused(owner_delete, T.VERDICT)  # and the gate refuses even the owner: only it writes verdicts
    _refused(forged, "description")
    assert own_text.status_code == 200, own_text.text  # text outside the block is the user's
    after = _state(admin, name)
    assert after["version_tags"] == before["version_tags"] and after["aliases"] == before["aliases"]
    assert [r["user"] for r in _audit(server, "refused_write", name)] == ["promoter", "owner", "promoter"]


def test_copy_into_a_gated_model_drops_copied_verdicts_and_runs_the_new_version_check(server, admin):
    source, target = "t-copy-source", "t-copy-target"
    version, _ = _gated_model(server, admin, source)
    _still_blocked(server, source, version)  # the source version now carries BLOCKED tags
    _gated_model(server, admin, target, new_versions=True)

    copied = admin.copy_model_version(f"models:/{source}/{version}", target)

    tags = admin.get_model_version(target, copied.version).tags
    assert tags[T.VERDICT] == T.ADVISORY_FAILED and tags[T.TARGET] == "new_version"
    assert T.OVERRIDE not in tags
