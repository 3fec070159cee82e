"""Two versions promoted to the same alias at the same time (threads, one process)."""

from __future__ import annotations

import threading

import numpy as np
from mlflow.exceptions import MlflowException

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import read_audit_log
from helpers.gate import breast_cancer_frames, gated_client, recipe_yaml, train_version, write_current

MODEL = "race"


def _promote_concurrently(client, versions):
    barrier = threading.Barrier(len(versions))
    outcome: dict[str, object] = {}

    def promote(version):
        barrier.wait(timeout=60)
        try:
            client.set_registered_model_alias(MODEL, "champion", version)
            outcome[version] = "ok"
        except MlflowException as exc:
            outcome[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    return outcome


def test_concurrent_promotions_end_with_alias_on_the_passing_version(tmp_path):
    client = gated_client()
    good = train_version(client, MODEL)
    train, holdout = breast_cancer_frames()
    shuffled = train.copy()
    shuffled["target"] = np.random.default_rng(3).permutation(shuffled["target"].to_numpy())
    bad = train_version(client, MODEL, frame=shuffled, c_reg=0.0001)  # near-constant predictions
    path = write_current(tmp_path, holdout)
    client.set_registered_model_tag(
        MODEL, T.RECIPE, recipe_yaml(path, rules=["drift_share < 0.5", "accuracy >= 0.8"]))

    outcome = _promote_concurrently(client, [good, bad])

    assert outcome[good] == "ok"
    assert isinstance(outcome[bad], MlflowException) and "accuracy >= 0.8" in outcome[bad].message
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == good
    assert client.get_model_version(MODEL, good).tags[T.VERDICT] == T.PASSED
    assert client.get_model_version(MODEL, bad).tags[T.VERDICT] == T.BLOCKED
    decided = sorted((r["version"], r["verdict"]) for r in read_audit_log()
                     if r.get("event") in (None, "verdict"))
    assert decided == sorted([(good, "PASSED"), (bad, "BLOCKED")])
