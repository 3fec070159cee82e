"""scikit-learn under autolog: mlflow.sklearn.autolog's run gets system stats and the reference."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlflow_monitor
from helpers.training import flush, only_run_id


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.normal(50, 15, n)})
    y = pd.Series((X["age"] + rng.normal(0, 5, n) > 40).astype(int), name="label")
    return X, y


def test_sklearn_fit_run_gets_system_stats_and_the_dataframe_as_reference():
    from mlflow_monitor.reference import load_reference

    mlflow_monitor.autolog(system_metrics_interval_s=0.1, notify=False, silent=True, log_models=False)
    X, y = _frame()
    make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)  # nested fits: one sampler
    flush()
    run_id = only_run_id()  # the run mlflow.sklearn.autolog created, shared
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert "training_accuracy_score" in run.data.metrics  # mlflow.sklearn.autolog still works
    assert "system/cpu_utilization_percentage" in run.data.metrics
    ref = load_reference(run_id)
    assert list(ref.frame.columns) == ["age", "income", "label"]
    assert ref.target == "label"
    assert ref.total_rows == 200


def test_sklearn_fit_logs_no_reference_when_log_reference_is_off():
    from mlflow_monitor.reference import REFERENCE_ARTIFACT_DIR

    mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True, log_models=False,
                           log_reference=False)
    X, y = _frame()
    with mlflow.start_run() as run:
        LogisticRegression().fit(X, y)
    artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)]
    assert REFERENCE_ARTIFACT_DIR.split("/")[0] not in artifacts
