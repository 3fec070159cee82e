"""The production closer takes the drift calibration logged with the version's reference
(``calibration.json``), as the gate does: a window's first verdict draws no bootstrap
replicate. Real sqlite store in this test's folder."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd

import mlflow_monitor
from mlflow_monitor.gate.drift import compute_drift
from mlflow_monitor.gate.drift.calibration import default_calibrator
from mlflow_monitor.production.closer import WindowCloser
from mlflow_monitor.production.window_drift import CALIBRATED

MODEL = "closer-calibrated"


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(0, 1, rows), "b": rng.lognormal(1, 0.5, rows),
                         "kind": rng.choice(["x", "y", "z"], rows)})


def test_the_closer_adopts_the_calibration_logged_with_the_reference():
    with mlflow.start_run() as run:
        mlflow_monitor.log_reference(_frame(3000, 0), task="drift", calibration_budget_s=120.0)
    client = mlflow.MlflowClient()
    client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, f"runs:/{run.info.run_id}/none", run.info.run_id)
    closer = WindowCloser(client, lambda: run.info.run_id, MODEL, str(mv.version), granularity_s=1)

    reference = closer.reference()
    assert reference is not None and reference.calibration is not None
    result = compute_drift(None, _frame(5000, 1), profile=reference.profile, settings=CALIBRATED)

    assert {c.column for c in result.columns if c.detection == "calibrated"} >= {"a", "b"}
    assert default_calibrator().computed == 0  # every tail came from calibration.json
