"""Performance metrics (consistent with Evidently's presets) and pyfunc predictions."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression

from mlflow_monitor.gate.performance import PredictionError, compute_performance, predict_frame, score_predictions
from mlflow_monitor.gate.reports import build_report
from mlflow_monitor.recipes import load_recipe


def _evidently_values(frame: pd.DataFrame, task: str) -> dict[str, float]:
    recipe = load_recipe({"task": task, "current": "x.csv",
                          "columns": {"target": "target", "prediction": "prediction"}})
    snap = build_report(frame, frame, recipe=recipe).snapshot
    by_type = {m["config"]["type"].rsplit(":", 1)[-1]: m["value"] for m in snap["metrics"]}
    return by_type


def _binary_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.8, y, 1 - y)
    return pd.DataFrame({"x": rng.normal(size=300), "target": y, "prediction": pred})


def test_binary_classification_metrics_match_evidentlys():
    frame = _binary_frame()
    ours = compute_performance(frame, task="classification", target="target", prediction="prediction")
    ev = _evidently_values(frame, "classification")
    assert ours["accuracy"] == pytest.approx(ev["Accuracy"], abs=1e-9)
    assert ours["precision"] == pytest.approx(ev["Precision"], abs=1e-9)
    assert ours["recall"] == pytest.approx(ev["Recall"], abs=1e-9)
    assert ours["f1"] == pytest.approx(ev["F1Score"], abs=1e-9)
    assert 0.7 < ours["accuracy"] < 0.9


def test_multiclass_metrics_match_evidentlys_macro_averages():
    X, y = load_iris(return_X_y=True, as_frame=True)
    pred = LogisticRegression(max_iter=200).fit(X.iloc[::2], y.iloc[::2]).predict(X)
    frame = X.assign(target=y, prediction=pred)
    ours = compute_performance(frame, task="classification", target="target", prediction="prediction")
    ev = _evidently_values(frame, "classification")
    for ours_name, ev_name in (("accuracy", "Accuracy"), ("precision", "Precision"),
                               ("recall", "Recall"), ("f1", "F1Score")):
        assert ours[ours_name] == pytest.approx(ev[ev_name], abs=1e-9), ours_name


def test_regression_metrics_match_evidentlys():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    X = X.iloc[:, :4]
    pred = LinearRegression().fit(X.iloc[:200], y.iloc[:200]).predict(X)
    frame = X.assign(target=y, prediction=pred)
    ours = compute_performance(frame, task="regression", target="target", prediction="prediction")
    ev = _evidently_values(frame, "regression")
    assert ours["rmse"] == pytest.approx(ev["RMSE"], rel=1e-9)
    assert ours["mae"] == pytest.approx(ev["MAE"]["mean"], rel=1e-9)
    assert ours["r2"] == pytest.approx(ev["R2Score"], rel=1e-9)
    assert ours["mean_error"] == pytest.approx(ev["MeanError"]["mean"], rel=1e-9, abs=1e-9)


def test_roc_auc_from_positive_class_probability_column():
    frame = pd.DataFrame({"target": [0, 0, 1, 1], "prediction": [0, 1, 1, 1], "p1": [0.1, 0.6, 0.7, 0.9]})
    out = compute_performance(frame, task="classification", target="target", prediction="prediction",
                              proba="p1")
    assert out["roc_auc"] == 1.0
    assert out["accuracy"] == 0.75


def test_rows_without_label_are_dropped_and_all_missing_is_an_error():
    frame = pd.DataFrame({"target": [1.0, np.nan, 3.0], "prediction": [1.0, 2.0, 5.0]})
    out = compute_performance(frame, task="regression", target="target", prediction="prediction")
    assert out["mae"] == 1.0
    with pytest.raises(ValueError, match="no rows with both target 'target' and prediction"):
        compute_performance(frame.assign(target=np.nan), task="regression", target="target",
                            prediction="prediction")


def test_missing_target_column_is_named():
    with pytest.raises(ValueError, match=r"target column 'label' is not in the data; columns: \['a'\]"):
        compute_performance(pd.DataFrame({"a": [1]}), task="classification", target="label", prediction="a")


def test_score_predictions_checks_lengths_and_task():
    assert score_predictions("classification", [1, 0, 1], [1, 0, 0])["accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="y_true has 3 values but y_pred has 2"):
        score_predictions("regression", [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="task must be 'classification' or 'regression', got 'drift'"):
        score_predictions("drift", [1], [1])


@pytest.fixture
def model_uri():
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=200).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return info.model_uri, X, model


def test_predict_frame_uses_the_logged_model(model_uri):
    uri, X, model = model_uri
    extra = X.assign(target=0)  # columns beyond the features are ignored
    out = predict_frame(uri, extra, list(X.columns))
    assert isinstance(out, pd.Series) and list(out.index) == list(X.index)
    np.testing.assert_array_equal(out.to_numpy(), model.predict(X))


def test_predict_frame_names_missing_feature_columns(model_uri):
    uri, X, _ = model_uri
    with pytest.raises(PredictionError, match=r"feature columns \['petal width \(cm\)'\] are missing"):
        predict_frame(uri, X.drop(columns=["petal width (cm)"]), list(X.columns))


def test_predict_frame_reports_model_that_fails_to_predict(model_uri):
    uri, X, _ = model_uri
    bad = X.assign(**{"sepal length (cm)": "not a number"})
    with pytest.raises(PredictionError, match=f"model '{uri}' failed to predict"):
        predict_frame(uri, bad, list(X.columns))


def test_predict_frame_reports_model_that_fails_to_load():
    with pytest.raises(PredictionError, match="cannot load model 'models:/no-such-model/1'"):
        predict_frame("models:/no-such-model/1", pd.DataFrame({"a": [1]}), ["a"])
