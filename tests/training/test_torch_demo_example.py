"""examples/demo_training.py trains and lands its metrics in the run it returns."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import mlflow

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo_training.py"


def test_demo_training_returns_a_finished_run_with_training_and_validation_metrics(tracking_uri, monkeypatch):
    from mlflow.tracking import fluent

    # the demo calls mlflow.set_experiment: keep that from leaking into later tests
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")  # restored (removed) at teardown
    spec = importlib.util.spec_from_file_location("demo_training", DEMO)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    run_id = demo.train_demo(tracking_uri, steps=120)
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    history = mlflow.MlflowClient().get_metric_history(run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, 121))
    assert run.data.metrics["val/accuracy"] > 0.8
