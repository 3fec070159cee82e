"""Scoring the candidate and the champion in one evaluation: the models get the feature
frame built once (text columns as ``object``), and the drift verdict runs on a second
thread meanwhile. Neither may change a number: real scikit-learn pipelines with text
columns, a sqlite registry in this test's folder."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

from mlflow_monitor.gate.decision import Target
from mlflow_monitor.gate.evaluation import CandidateEvaluator
from mlflow_monitor.gate.performance import model_input, predict_frame
from mlflow_monitor.recipes import load_recipe

MODEL = "scored"
NUM = ["n0", "n1", "n2", "n3"]
CAT = ["city", "plan"]


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(0.0, 1.0, rows) for c in NUM})
    frame["city"] = pd.array(rng.choice(["oslo", "lima", "pune", "kyiv"], rows), dtype="str")
    frame["plan"] = pd.array(rng.choice(["free", "pro", "team"], rows, p=[0.6, 0.3, 0.1]), dtype="str")
    logit = frame["n0"] - 0.7 * frame["n1"] + (frame["city"] == "lima") * 0.9
    frame["target"] = (logit + rng.normal(0.0, 1.0, rows) > 0).astype(int)
    return frame


def _version(frame: pd.DataFrame, c_reg: float) -> tuple[str, object]:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder, StandardScaler

    import mlflow_monitor

    model = make_pipeline(
        ColumnTransformer([("num", StandardScaler(), NUM),
                           ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), CAT)]),
        LogisticRegression(max_iter=300, C=c_reg))
    model.fit(frame[NUM + CAT], frame["target"])
    with mlflow.start_run() as run:
        mlflow_monitor.log_reference(frame, target="target", task="classification")
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"],
                                        input_example=frame[NUM + CAT].head(3))
    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(MODEL)
    except Exception:
        client.create_registered_model(MODEL)
    mv = client.create_model_version(MODEL, info.model_uri, run.info.run_id, model_id=info.model_id)
    return str(mv.version), model


@pytest.fixture
def champion_and_candidate(tmp_path):
    reference = _frame(3000, 0)
    champion, champion_model = _version(reference, 1.0)
    candidate, candidate_model = _version(reference, 0.01)
    current = _frame(4000, 1)
    current.loc[current.index[:40], "city"] = "rome"  # a city neither model has seen
    path = tmp_path / "current.parquet"
    current.to_parquet(path, index=False)
    mlflow.MlflowClient().set_registered_model_alias(MODEL, "champion", champion)
    recipe = load_recipe({
        "name": "scoring", "task": "classification", "columns": {"target": "target"},
        "current": {"path": str(path)},
        "rules": ["drift_share < 0.5", "accuracy >= 0.5", {"metric": "accuracy", "max_drop_vs_champion": 0.5}],
        "triggers": {"aliases": ["champion"]},
    })
    store = SqlAlchemyStore(mlflow.get_registry_uri())
    return {"store": store, "recipe": recipe, "candidate": candidate, "champion": champion,
            "models": (candidate_model, champion_model), "current": pd.read_parquet(path)}


def test_concurrent_scoring_gives_the_sequential_verdict_metrics_and_drift(champion_and_candidate):
    s = champion_and_candidate
    mv = s["store"].get_model_version(MODEL, s["candidate"])
    target = Target("alias", "champion")

    sequential = CandidateEvaluator(s["store"], mlflow.get_tracking_uri(), s["recipe"], concurrent=False).run(
        MODEL, mv, target)
    concurrent = CandidateEvaluator(s["store"], mlflow.get_tracking_uri(), s["recipe"]).run(MODEL, mv, target)

    assert concurrent.champion_version == sequential.champion_version == s["champion"]
    assert concurrent.metrics == sequential.metrics
    assert concurrent.champion_metrics == sequential.champion_metrics
    assert concurrent.drift.to_dict() == sequential.drift.to_dict()
    assert [r.to_dict() for r in concurrent.rule_results] == [r.to_dict() for r in sequential.rule_results]
    assert concurrent.passed == sequential.passed
    # and the numbers are those of the models themselves on the frame as read (text as str)
    from sklearn.metrics import accuracy_score

    cur = s["current"]
    candidate_model, champion_model = s["models"]
    assert concurrent.metrics["accuracy"] == accuracy_score(cur["target"], candidate_model.predict(cur[NUM + CAT]))
    assert concurrent.champion_metrics["accuracy"] == accuracy_score(cur["target"],
                                                                     champion_model.predict(cur[NUM + CAT]))


def test_drift_verdict_error_is_raised_first_when_both_sides_fail(champion_and_candidate, monkeypatch):
    s = champion_and_candidate
    mv = s["store"].get_model_version(MODEL, s["candidate"])
    import mlflow_monitor.gate.drift as drift_pkg
    import mlflow_monitor.gate.performance as performance

    def broken_drift(*_a, **_k):
        raise ValueError("drift verdict failed")

    def broken_predict(*_a, **_k):
        raise performance.PredictionError("prediction failed")

    monkeypatch.setattr(drift_pkg, "compute_drift", broken_drift)
    monkeypatch.setattr(performance, "predict_frame", broken_predict)
    for concurrent in (True, False):
        evaluator = CandidateEvaluator(s["store"], mlflow.get_tracking_uri(), s["recipe"], concurrent=concurrent)
        with pytest.raises(ValueError, match="drift verdict failed"):
            evaluator.run(MODEL, mv, Target("alias", "champion"))


def test_model_input_turns_text_columns_to_object_and_keeps_predictions(champion_and_candidate):
    s = champion_and_candidate
    cur = s["current"].copy()
    cur.loc[cur.index[:5], "plan"] = None  # missing text stays missing
    features = NUM + CAT
    given = model_input(cur, features)
    assert list(given.columns) == features
    assert all(given[c].dtype == object for c in CAT) and all(given[c].dtype == np.float64 for c in NUM)
    assert given["plan"].isna().sum() == 5 and given["city"].tolist() == cur["city"].tolist()[:len(cur)]
    uri = s["store"].get_model_version_download_uri(MODEL, s["champion"])
    clean = s["current"]
    assert (predict_frame(uri, model_input(clean, features), features) == predict_frame(uri, clean, features)).all()


def test_model_input_leaves_missing_features_for_predict_frame_to_name(champion_and_candidate):
    s = champion_and_candidate
    uri = s["store"].get_model_version_download_uri(MODEL, s["champion"])
    given = model_input(s["current"].drop(columns=["plan"]), NUM + CAT)
    assert "plan" not in given.columns
    with pytest.raises(performance_error(), match=r"feature columns \['plan'\] are missing"):
        predict_frame(uri, given, NUM + CAT)


def performance_error():
    from mlflow_monitor.gate.performance import PredictionError

    return PredictionError
