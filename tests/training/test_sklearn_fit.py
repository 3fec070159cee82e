"""scikit-learn under autolog: a fit inside a run gets mlflow.sklearn.autolog's logging, system
stats and the reference; a fit outside any run leaves no run behind (and Slack announces none)."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mlflow_monitor
from helpers.slack_stub import FAST_SETTINGS, SlackStub
from helpers.training import flush, only_run_id
from mlflow_monitor.mlflow_compat import autologging_is_disabled, managed_run_module


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"age": rng.normal(40, 10, n), "income": rng.normal(50, 15, n)})
    y = pd.Series((X["age"] + rng.normal(0, 5, n) > 40).astype(int), name="label")
    return X, y


def test_sklearn_fit_run_gets_system_stats_and_the_dataframe_as_reference():
    from mlflow_monitor.reference import load_reference

    mlflow_monitor.autolog(system_metrics_interval_s=0.1, notify=False, silent=True, log_models=False)
    X, y = _frame()
    with mlflow.start_run():
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)  # nested fits: one sampler
    flush()
    run_id = only_run_id()
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


def _all_runs() -> list:
    return mlflow.search_runs(search_all_experiments=True, output_format="list")


def test_fits_outside_any_run_leave_no_run_and_slack_announces_only_the_users_run(monkeypatch):
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # the stub is on loopback
        monkeypatch.delenv(var, raising=False)
    with SlackStub() as slack:
        monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.webhook_url)
        mlflow_monitor.autolog(notify=dict(FAST_SETTINGS), system_metrics_interval_s=0.1, silent=True,
                               log_models=False)
        assert not autologging_is_disabled("sklearn")  # autolog() turned mlflow.sklearn.autolog on
        X, y = _frame()
        scaler = StandardScaler().fit(X)  # outside any run, as a library or a preprocessing step does
        make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)  # nested fits, outside a run
        LogisticRegression().fit(scaler.transform(X), y)
        assert _all_runs() == []
        with mlflow.start_run(run_name="users-run") as run:
            model = LogisticRegression().fit(X, y)
        flush()
        assert model.score(X, y) > 0.8  # the fits themselves ran as usual
        runs = _all_runs()
        assert [r.info.run_id for r in runs] == [run.info.run_id]
        logged = runs[0].data.metrics
        assert "training_accuracy_score" in logged and "system/cpu_utilization_percentage" in logged
        mlflow_monitor.autolog(disable=True, silent=True)  # flushes the notifier (bounded)
        texts = [m["text"] for m in slack.messages]
        assert len(texts) == 1 and "users-run" in texts[0], texts


def test_a_fit_outside_a_run_still_gets_mlflows_run_when_the_user_turned_sklearn_autolog_on():
    import mlflow.sklearn

    mlflow.sklearn.autolog(log_models=False, silent=True)  # the user's own choice, before ours
    try:
        mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True)
        X, y = _frame()
        LogisticRegression().fit(X, y)
        flush()
        (run,) = _all_runs()
        assert "training_accuracy_score" in run.data.metrics
    finally:
        mlflow.sklearn.autolog(disable=True, silent=True)


def test_mlflows_managed_run_wrapper_is_put_back_and_disable_restores_mlflows_behaviour():
    import mlflow.sklearn

    original = managed_run_module().with_managed_run
    mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True, log_models=False)
    assert managed_run_module().with_managed_run is original  # replaced only while installing
    mlflow_monitor.autolog(disable=True, silent=True)
    assert autologging_is_disabled("sklearn")  # we turned it on, so we turned it off
    mlflow.sklearn.autolog(log_models=False, silent=True)  # now the user's: runs outside a run again
    try:
        X, y = _frame()
        LogisticRegression().fit(X, y)
        assert len(_all_runs()) == 1
    finally:
        mlflow.sklearn.autolog(disable=True, silent=True)
