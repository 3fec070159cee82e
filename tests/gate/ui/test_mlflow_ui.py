"""The gate in the real MLflow UI: Debian's chromium driven by playwright (pip), against a
real ``mlflow server --registry-store-uri monitor:...``.

Never ``playwright install`` (it downloads a browser): the test uses ``/usr/bin/chromium``
(``apt-get install chromium``; ``.ci/run`` installs it) and fails under ``CI=true`` when it
is missing.
"""

from __future__ import annotations

import os
import re
import shutil

import mlflow
import pytest
import requests
from mlflow import MlflowClient

from mlflow_monitor.gate import tags as T
from helpers.gate import breast_cancer_frames, drifted, recipe_yaml, train_version, write_current
from helpers.servers import MlflowServer

pytestmark = pytest.mark.slow  # a server, a browser and a trained model

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MODEL = "ui-gated"


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} (CI=true: the UI test must run)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _missing(f"{CHROMIUM} not found (apt-get install chromium)")
    root = tmp_path_factory.mktemp("ui_server")
    srv = MlflowServer(root, registry_store_uri=f"monitor:sqlite:///{root / 'server.db'}",
                       env={"MLFLOW_MONITOR_HOME": str(root / "monitor_home")})
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def drifted_version(server, tmp_path_factory):
    """A version of MODEL whose recipe blocks @champion (drifted current data)."""
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    try:
        client = MlflowClient(server.url, server.url)
        version = train_version(client, MODEL)
        path = write_current(tmp_path_factory.mktemp("ui_data"), drifted(breast_cancer_frames()[1]))
        # the operator attaches the policy against the database (no REST caller may, without auth)
        operator = MlflowClient(registry_uri=server.registry_store_uri.split(":", 1)[1])
        operator.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(path))
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return version


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tmp_path / "chromium-profile"  # a fresh user-data-dir per test
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(60_000)
        try:
            yield ctx.new_page()
        finally:
            ctx.close()
            shutil.rmtree(profile, ignore_errors=True)


def _rest(server, path: str, **params):
    return requests.get(f"{server.url}/api/2.0/mlflow/{path}", params=params, timeout=30).json()


def test_blocked_alias_in_the_alias_modal_shows_the_refusal_and_sets_nothing(server, drifted_version,
                                                                             page, tmp_path):
    page.goto(f"{server.url}/#/models/{MODEL}/versions/{drifted_version}")
    page.get_by_role("button", name="Add").first.click()  # "Aliases: Add"
    dialog = page.get_by_role("dialog")
    aliases = dialog.get_by_role("combobox")
    aliases.fill("champion")
    aliases.press("Enter")
    dialog.get_by_role("button", name="Save aliases").click()

    headline = (f"mlflow-monitor gate BLOCKED v{drifted_version} -> alias:champion: "
                "drift_share < 0.3 failed (+1 more); details on the version page")
    refusal = dialog.get_by_text(headline)
    refusal.wait_for(state="visible", timeout=180_000)  # the gate evaluates in the request
    page.screenshot(path=str(tmp_path / "alias_blocked.png"))

    assert "FAILED drift_share < 0.3" in dialog.inner_text()
    assert "champion" not in _rest(server, "registered-models/get", name=MODEL)["registered_model"].get(
        "aliases", [])  # nothing changed
    version = _rest(server, "model-versions/get", name=MODEL, version=drifted_version)["model_version"]
    assert {t["key"]: t["value"] for t in version["tags"]}[T.VERDICT] == T.BLOCKED


def test_versions_table_previews_the_verdict_line_not_the_marker(server, drifted_version, page, tmp_path):
    # runs after the block above recorded the verdict (same module, file order)
    page.goto(f"{server.url}/#/models/{MODEL}")
    preview = page.get_by_text("BLOCKED (mlflow-", exact=False).first
    preview.wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "versions_table.png"), full_page=True)

    assert "mlflow_monitor.gate:begin" not in page.inner_text("body")


def test_deleting_the_recipe_tag_in_the_ui_is_refused_and_the_tag_stays(server, drifted_version, page,
                                                                        tmp_path):
    page.goto(f"{server.url}/#/models/{MODEL}")
    row = page.locator("tr", has_text=T.RECIPE)
    row.get_by_test_id("editable-table-button-delete").click()  # the trash icon
    page.get_by_role("button", name="Confirm").click()

    # a server without auth has no identity: no UI/REST user may change the policy
    refusal = page.get_by_text(re.compile(r"mlflow_monitor\.recipe.*(refused|protected|not allowed|policy)",
                                          re.IGNORECASE | re.DOTALL))
    try:
        refusal.first.wait_for(state="visible", timeout=30_000)
    finally:
        page.screenshot(path=str(tmp_path / "recipe_delete.png"), full_page=True)
        tags = {t["key"]: t["value"] for t in
                _rest(server, "registered-models/get", name=MODEL)["registered_model"].get("tags", [])}
        assert T.RECIPE in tags  # nothing changed
