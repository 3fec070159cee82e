"""Drift calibration paid when the reference is logged: ``log_reference`` stores the
bootstrap null tails in ``calibration.json``, the gate adopts them, and the first check
after logging draws no bootstrap replicate. Real sqlite store in this test's folder."""

from __future__ import annotations

import json
import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

import mlflow_monitor
from mlflow_monitor.gate.decision import Target
from mlflow_monitor.gate.drift.calibration import Calibrator, default_calibrator
from mlflow_monitor.gate.promotion import PromotionGate
from mlflow_monitor.reference import ColumnSample, ReferenceProfile, load_reference
from mlflow_monitor.reference.null_tail import (
    CALIBRATION_FORMAT,
    GAUSSIAN_ROWS,
    gaussian_key,
    precalibrate,
    simulate_unit,
    simulate_units,
    unit_seed,
)

MODEL = "calibrated"
NUMERIC = ["a", "b", "c"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(0, 1, rows), "b": rng.lognormal(1, 0.5, rows),
                         "c": rng.gamma(2.0, 1.0, rows), "kind": rng.choice(["x", "y", "z"], rows),
                         "steps": rng.integers(0, 3, rows)})  # 3 values: discrete, no bootstrap


def _version(tmp_path, **log_kwargs) -> tuple[str, str]:
    with mlflow.start_run() as run:
        mlflow_monitor.log_reference(_frame(3000, 0), task="drift", **log_kwargs)
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(MODEL)
    except Exception:
        client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/none", run.info.run_id)
    path = tmp_path / "current.parquet"
    _frame(5000, 1).to_parquet(path, index=False)
    recipe = {"name": "drift-check", "task": "drift", "current": {"path": str(path)},
              "rules": ["drift_share < 0.5"], "triggers": {"aliases": ["champion"]},
              # the built-in split, what logging sizes for
              "drift": {"new_category_alpha_share": 0.6, "distribution_alpha_share": 0.3}}
    return str(mv.version), json.dumps(recipe)


def _check(version: str, recipe: str):
    uri = mlflow.get_registry_uri()
    gate = PromotionGate(SqlAlchemyStore(uri), inner_uri=uri, tracking_uri=mlflow.get_tracking_uri())
    return gate.check(MODEL, version, Target("alias", "champion"), recipe=recipe)


def test_first_check_after_logging_the_reference_draws_no_bootstrap(tmp_path):
    version, recipe = _version(tmp_path, calibration_budget_s=120.0)

    decision = _check(version, recipe)

    assert decision.error is None and decision.evaluation is not None
    drift = decision.evaluation.drift
    for name in NUMERIC:  # bootstrap-calibrated columns (3000 + 5000 values)
        column = drift.column(name)
        assert column.method == "wasserstein" and column.detection == "calibrated" and column.calibrated_threshold > 0
    assert default_calibrator().computed == 0  # every tail came from calibration.json


def test_without_precalibration_the_first_check_draws_the_bootstrap(tmp_path):
    version, recipe = _version(tmp_path, calibration_budget_s=0)
    run_id = mlflow.MlflowClient().get_model_version(MODEL, version).run_id
    assert load_reference(run_id).calibration is None

    _check(version, recipe)

    assert default_calibrator().computed == len(NUMERIC)


def test_precalibrated_and_first_use_thresholds_agree(tmp_path):
    from mlflow_monitor.gate.drift import compute_drift
    from mlflow_monitor.recipes import load_recipe

    version, recipe = _version(tmp_path, calibration_budget_s=120.0)
    adopted = _check(version, recipe).evaluation.drift
    reference = load_reference(mlflow.MlflowClient().get_model_version(MODEL, version).run_id)
    fresh = Calibrator(persist=False)

    recomputed = compute_drift(reference.frame, _frame(5000, 1), profile=reference.profile,
                               settings=load_recipe(json.loads(recipe)).effective_drift, calibrator=fresh)

    assert fresh.computed == len(NUMERIC)
    for name in NUMERIC:  # the same seed and law: the same thresholds
        assert recomputed.column(name).calibrated_threshold == adopted.column(name).calibrated_threshold


def test_logged_calibration_lists_columns_past_the_budget_and_names_its_sizing(tmp_path):
    profile = ReferenceProfile.from_frame(_frame(3000, 0))

    none = precalibrate(profile, ["a", "b", "c", "kind", "steps"], budget_s=0.0)
    full = precalibrate(profile, ["a", "b", "c", "kind", "steps"], budget_s=120.0)

    # the shared unit tails come first, whatever the budget; the small-size buckets wait
    assert none["skipped"] == NUMERIC
    assert all(list(e) == [gaussian_key(3000)] for e in none["columns"].values())
    assert full["skipped"] == [] and full["format"] == CALIBRATION_FORMAT
    assert all(len(e) == 3 for e in full["columns"].values())  # unit + buckets of 300 and 1500 rows
    # built-in split: 0.01 x 0.3 over the 5 distribution tests, 0.0006 each: 1,667 replicates
    assert full["tests"] == 15 and full["replicates"] == 1667 and full["new_category_alpha_share"] == 0.6
    assert full["distribution_alpha_share"] == 0.3
    assert set(full["columns"]) == {profile.side(c).digest() for c in NUMERIC}


def test_large_samples_share_one_unit_tail_scaled_by_the_size_law():
    ref = ColumnSample(values=np.random.default_rng(3).normal(size=GAUSSIAN_ROWS * 2))
    cal = Calibrator(persist=False)

    small = cal.null_tail(ref, current=3000, replicates=1000)
    large = cal.null_tail(ref, current=1_000_000, replicates=1000)

    assert cal.computed == 1 and (small.bucket, large.bucket) == (3000, 1_000_000)
    ratio = math.sqrt((1 / ref.n + 1 / 1_000_000) / (1 / ref.n + 1 / 3000))
    assert np.allclose(large.distribution, small.distribution * ratio, rtol=1e-12)


@pytest.mark.parametrize("bad", [
    {"format": CALIBRATION_FORMAT, "columns": {"d": {"k": {"replicates": 10, "bucket": 1, "distribution": "x"}}}},
    {"format": CALIBRATION_FORMAT, "columns": {"d": {"k": {"bucket": 1, "distribution": [1.0]}}}},
    {"format": CALIBRATION_FORMAT, "columns": {"d": {"k": {"replicates": 9, "bucket": 1,
                                                           "distribution": [float("inf")]}}}},
    {"format": "something else", "columns": {"d": {}}},
    {"format": CALIBRATION_FORMAT, "columns": ["not", "a", "mapping"]},
    "not a dict",
])
def test_malformed_logged_calibration_is_ignored(bad):
    cal = Calibrator(persist=False)
    assert cal.adopt(bad) == 0
    assert cal._entries("d") == {}


def test_columns_on_quantile_atoms_share_one_draw_with_the_numbers_of_one_by_one():
    rng = np.random.default_rng(5)
    refs = [ColumnSample(values=rng.normal(size=4000)), ColumnSample(values=rng.lognormal(size=3000)),
            ColumnSample(values=rng.integers(0, 40, 3000).astype(float))]  # 40 values: its own seed

    together = simulate_units(refs, replicates=1200)

    for ref, tail in zip(refs, together):
        alone = simulate_unit(ref, replicates=1200, seed=unit_seed(ref))
        assert np.array_equal(tail.distribution, alone.distribution)
    assert unit_seed(refs[0]) == unit_seed(refs[1]) != unit_seed(refs[2])

