"""The metrics section of mlflow_compat: the MLflow internals it reaches still look the way it expects."""

from __future__ import annotations

import os
import sys

import mlflow
import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mlflow_monitor import mlflow_compat


@pytest.fixture(params=["mlflow", "fallback"])
def validate(request, monkeypatch):
    """validate_metric_name with MLflow's private rule, and with its fallback (the private module gone)."""
    if request.param == "fallback":
        monkeypatch.setitem(sys.modules, "mlflow.utils.validation", None)  # its import now raises ImportError
    return mlflow_compat.validate_metric_name


def test_the_fluent_run_stack_is_a_thread_local_holding_stack_and_pid():
    local = mlflow_compat.active_run_stack_local()
    assert local is not None, "MLflow moved its fluent run stack: run_context falls back to mlflow.active_run()"
    with mlflow.start_run() as run:
        stack, pid = local.value
        assert stack[-1].info.run_id == run.info.run_id and pid == os.getpid()


@pytest.mark.parametrize("name", ["train/loss", "val acc", "a.b-c_d:e", "x" * 200])
def test_valid_metric_names_pass_mlflows_rule_and_the_fallback(validate, name):
    validate(name)


@pytest.mark.parametrize("name", ["bad name!", "bad//../name", "../up", "/abs", "a//b", ".", "tab\tname"])
def test_invalid_metric_names_fail_mlflows_rule_and_the_fallback_alike(validate, name):
    with pytest.raises(MlflowException) as exc:
        validate(name)
    assert exc.value.error_code == "INVALID_PARAMETER_VALUE"


def test_the_sql_tables_and_engine_of_a_sqlite_store_are_reachable(tracking_uri):
    metrics, latest, runs = mlflow_compat.sql_metric_tables()
    assert (metrics.name, latest.name, runs.name) == ("metrics", "latest_metrics", "runs")
    assert mlflow_compat.sql_store_engine(tracking_uri).dialect.name == "sqlite"


def test_the_log_batch_body_spells_nan_as_mlflows_server_parses_it():
    body = mlflow_compat.log_batch_json("r", [Metric("m", float("nan"), 5, 2)])
    assert body["run_id"] == "r" and body["metrics"][0]["value"] == "NaN"
