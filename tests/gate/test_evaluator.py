"""mlflow.models.evaluate(..., evaluators=["evidently"]) with a real sklearn model."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from mlflow_monitor.gate.mlflow_evaluator import EvidentlyEvaluator
from mlflow_monitor.reference import log_reference


@pytest.fixture
def logged_model():
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4]
    model = LogisticRegression(max_iter=1000).fit(X.iloc[:300], y.iloc[:300])
    with mlflow.start_run() as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        log_reference(X.iloc[:300].assign(target=y.iloc[:300]), target="target", task="classification")
    # current data: the held-out rows with one feature shifted
    current = X.iloc[300:].assign(target=y.iloc[300:])
    current["mean radius"] = current["mean radius"] * 1.5
    return info.model_uri, run.info.run_id, X.iloc[:300].assign(target=y.iloc[:300]), current, model


def _artifacts(run_id: str, folder: str) -> set[str]:
    return {f.path for f in mlflow.MlflowClient().list_artifacts(run_id, folder)}


def test_evaluate_with_evidently_logs_reports_and_metrics(logged_model):
    uri, _, reference, current, model = logged_model
    with mlflow.start_run() as run:
        result = mlflow.models.evaluate(
            uri, current, targets="target", model_type="classifier", evaluators=["evidently"],
            evaluator_config={"evidently": {"reference": reference}},
        )
    assert _artifacts(run.info.run_id, "evidently") == {
        "evidently/report.html", "evidently/report.json", "evidently/summary.json"}
    logged = mlflow.get_run(run.info.run_id).data.metrics
    expected_acc = float((model.predict(current.drop(columns="target")) == current["target"]).mean())
    assert logged["monitor/accuracy"] == pytest.approx(expected_acc)
    assert result.metrics["monitor/accuracy"] == pytest.approx(expected_acc)
    assert logged["monitor/n_drifted"] >= 1  # 'mean radius' was shifted
    summary = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/evidently/summary.json")
    assert "mean radius" in [c["column"] for c in summary["drifted_columns"]]
    assert set(result.artifacts) == {"evidently_report", "evidently_snapshot"}
    html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/evidently/report.html")
    assert "Accuracy" in json.dumps(mlflow.artifacts.load_dict(
        f"runs:/{run.info.run_id}/evidently/report.json"))
    assert html.lstrip().startswith("<!DOCTYPE html>")


def test_reference_may_be_the_run_id_of_a_logged_reference(logged_model):
    uri, ref_run_id, _, current, _ = logged_model
    with mlflow.start_run() as run:
        result = mlflow.models.evaluate(
            uri, current, targets="target", model_type="classifier", evaluators=["evidently"],
            evaluator_config={"evidently": {"reference": ref_run_id, "artifact_path": "drift"}},
        )
    assert "drift/report.html" in _artifacts(run.info.run_id, "drift")
    assert "monitor/drift_share" in result.metrics


def test_evaluator_only_runs_when_configured_with_a_reference():
    assert EvidentlyEvaluator.can_evaluate(model_type="classifier", evaluator_config={}) is False
    assert EvidentlyEvaluator.can_evaluate(model_type="classifier", evaluator_config={"x": 1}) is False
    assert EvidentlyEvaluator.can_evaluate(model_type="classifier",
                                           evaluator_config={"reference": pd.DataFrame({"a": [1]})})


def test_evaluator_is_registered_under_the_evidently_entry_point():
    from mlflow.models.evaluation.evaluator_registry import _model_evaluation_registry

    assert _model_evaluation_registry.get_evaluator("evidently") is not None
    assert isinstance(_model_evaluation_registry.get_evaluator("evidently"), EvidentlyEvaluator)


def test_repeated_evaluations_in_one_run_chart_over_time_and_keep_both_reports(logged_model):
    uri, _, reference, current, _ = logged_model
    with mlflow.start_run() as run:
        for _ in range(2):
            mlflow.models.evaluate(
                uri, current, targets="target", model_type="classifier", evaluators=["evidently"],
                evaluator_config={"evidently": {"reference": reference}},
            )
    client = mlflow.MlflowClient()
    folders = sorted(a.path for a in client.list_artifacts(run.info.run_id) if a.path.startswith("evidently"))
    assert len(folders) == 2 and folders[0] == "evidently"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "monitor/drift_share")]
    # ours at steps 1, 2; MLflow adds its own copy at step 0, linked to the logged model
    assert [s for s in steps if s] == [1, 2] and set(steps) <= {0, 1, 2}
    summary = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/{folders[1]}/summary.json")
    assert list(summary)[:2] == ["verdict", "target"]
    assert all({"column", "method", "threshold", "score"} <= set(c) for c in summary["drift"]["columns"])
    html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/{folders[1]}/report.html")
    assert html.index('id="mlflow-monitor-verdict"') < html.index('id="mlflow-monitor-banner"')
