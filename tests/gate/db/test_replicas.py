"""Two ``mlflow server`` replicas on one PostgreSQL (and one MariaDB) database, racing
promotions of good and bad versions to one alias.

Each replica has its own ``MLFLOW_MONITOR_HOME`` (two hosts); they share only the
database and the artifact store. The audit table is the witness: replayed in order, every
verdict must name as ``champion_before`` the version the previous allowed promotion put
there, the end state must be a passing version, the override must be used at most once,
and ``audit verify`` must pass.
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import mlflow
import numpy as np
import pytest
import requests
from click.testing import CliRunner
from mlflow import MlflowClient

from mlflow_monitor.gate import tags as T
from helpers.databases import drop_database, new_database
from helpers.gate import breast_cancer_frames, recipe_yaml, train_version
from helpers.servers import MlflowServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MODEL = "replicated"
PROMOTIONS = 20


@pytest.fixture(params=["postgresql", "mysql"])
def replicas(request, tmp_path):
    uri = new_database(request.param)
    servers = []
    try:
        for i in range(2):
            srv = MlflowServer(tmp_path / f"replica{i}", backend_store_uri=uri, registry_store_uri=f"monitor:{uri}",
                               env={"MLFLOW_MONITOR_HOME": str(tmp_path / f"replica{i}" / "monitor_home")})
            srv.artifacts = tmp_path / "shared_artifacts"  # one artifact store, as replicas have
            servers.append(srv)
            srv.start()  # one after the other: the first creates MLflow's schema
        yield uri, servers
    finally:
        for srv in servers:
            srv.stop()
        drop_database(uri)


def _versions(client) -> tuple[list[str], list[str], str]:
    train, holdout = breast_cancer_frames()
    good = [train_version(client, MODEL), train_version(client, MODEL, c_reg=0.5)]
    shuffled = train.copy()
    shuffled["target"] = np.random.default_rng(3).permutation(shuffled["target"].to_numpy())
    bad = [train_version(client, MODEL, frame=shuffled, c_reg=0.0001) for _ in range(2)]
    with mlflow.start_run() as run, tempfile.TemporaryDirectory() as tmp:  # current data, shared store
        holdout.to_parquet(Path(tmp) / "holdout.parquet", index=False)
        mlflow.log_artifact(str(Path(tmp) / "holdout.parquet"), "current")
    return good, bad, f"runs:/{run.info.run_id}/current/holdout.parquet"


def test_replicas_serialise_promotions_and_keep_one_chain(replicas):
    uri, servers = replicas
    mlflow.set_tracking_uri(servers[0].url)
    mlflow.set_registry_uri(servers[0].url)
    client = MlflowClient(tracking_uri=servers[0].url, registry_uri=servers[0].url)
    good, bad, current = _versions(client)
    rules = ["drift_share < 0.5", "accuracy >= 0.8", "{metric: accuracy, max_drop_vs_champion: 0.05}"]
    # the policy and an approved break glass on one bad version, set by operators straight in
    # the database (the servers run without auth: no REST caller may change policy or approve)
    operator = MlflowClient(tracking_uri=uri, registry_uri=uri)
    operator.set_registered_model_tag(MODEL, T.RECIPE, recipe_yaml(current, rules=rules, sample_size=100))
    operator.set_model_version_tag(MODEL, bad[0], T.OVERRIDE_USER, "operator")
    operator.set_model_version_tag(MODEL, bad[0], T.OVERRIDE, "incident 42: roll forward")
    operator.set_model_version_tag(MODEL, bad[0], T.OVERRIDE_APPROVED_BY, "second-operator")

    order = [(good + bad)[i % 4] for i in range(PROMOTIONS)]
    barrier = threading.Barrier(PROMOTIONS)
    statuses: dict[int, int] = {}

    def promote(i: int, version: str) -> None:
        server = servers[i % 2]
        barrier.wait(timeout=60)
        resp = requests.post(server.url + "/api/2.0/mlflow/registered-models/alias",
                             json={"name": MODEL, "alias": "champion", "version": version}, timeout=600)
        statuses[i] = resp.status_code

    threads = [threading.Thread(target=promote, args=(i, v)) for i, v in enumerate(order)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=700)
    assert not any(t.is_alive() for t in threads)

    from mlflow_monitor.gate.audit import read_audit_log, verify_audit

    records = [r for r in read_audit_log(store_uri=uri)
               if r.get("event") == "verdict" and r.get("target") == "alias:champion"]
    assert sorted(statuses.values()) == sorted(200 if r["allowed"] else 400 for r in records)
    assert len(records) == PROMOTIONS
    holder = None
    for r in records:  # replay: each verdict saw the champion of its moment
        assert r["champion_before"] == holder, (r["version"], r["champion_before"], holder)
        if r.get("champion_version") is not None:
            assert r["champion_version"] == holder  # and its champion rule scored that version
        if r["allowed"]:
            holder = r["version"]
    final = str(client.get_model_version_by_alias(MODEL, "champion").version)
    assert final == holder
    overridden = [r for r in records if r["verdict"] == T.OVERRIDDEN]
    assert len(overridden) <= 1 and all(r["version"] == bad[0] for r in overridden)
    passing = set(good) | {r["version"] for r in overridden}
    assert final in passing
    assert {r["version"] for r in records if r["verdict"] == T.PASSED} <= set(good)
    assert T.OVERRIDE not in client.get_model_version(MODEL, bad[0]).tags
    report = verify_audit(uri)
    assert report.ok, report.problems

    from mlflow_monitor.cli import main

    result = CliRunner().invoke(main, ["audit", "verify", "--registry-uri", f"monitor:{uri}"])
    assert result.exit_code == 0 and "OK: the chain is intact" in result.output, result.output
