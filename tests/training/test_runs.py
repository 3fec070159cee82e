"""MonitoredRuns: which run a step goes to, the end_run wrap, and the RunSummary (final and best)."""

from __future__ import annotations

import mlflow
import pytest

from helpers.training import flush, history
from mlflow_monitor.events import RunSummary, subscribe
from mlflow_monitor.patching import PatchRegistry
from mlflow_monitor.runs import MonitoredRuns, RunOptions, higher_is_better


@pytest.fixture
def runs():
    patches = PatchRegistry()
    monitored = MonitoredRuns(RunOptions(system_metrics=False, silent=True))
    monitored.install(patches)
    yield monitored
    patches.undo_all()


@pytest.fixture
def summaries():
    got: list[RunSummary] = []
    unsubscribe = subscribe(got.append, RunSummary)
    yield got
    unsubscribe()


@pytest.mark.parametrize("key, higher", [
    ("layer2_loss", False),
    ("f1_loss", False),
    ("accum_loss", False),
    ("train/loss", False),
    ("val/acc", True),
    ("f1", True),
    ("val/accuracy", True),
    ("training_accuracy_score", True),
    ("training_log_loss", False),
    ("training_roc_auc", True),
    ("training_mean_squared_error", False),
    ("train/samples_per_s", True),
    ("train/step_time_s", False),
    ("val_loss_epoch", False),
])
def test_best_direction_comes_from_the_name_tokens_not_a_substring(key, higher):
    assert higher_is_better(key) is higher


@pytest.mark.parametrize("key", ["train/lr", "train/grad_norm", "accum", "layer2", "custom/thing"])
def test_metrics_of_unknown_direction_get_no_best(key):
    assert higher_is_better(key) is None


def test_summary_best_follows_each_metrics_direction_and_unknown_ones_get_only_a_final(runs, summaries):
    values = {"layer2_loss": [3.0, 1.0, 2.0], "f1_loss": [0.5, 0.2, 0.4], "accum_loss": [9.0, 7.0, 8.0],
              "val/acc": [0.1, 0.9, 0.5], "f1": [0.3, 0.8, 0.6], "train/loss": [2.0, 0.5, 1.0],
              "train/lr": [0.1, 0.01, 0.05]}
    with mlflow.start_run() as run:
        run_id = runs.current_run_id()
        for step in range(3):
            runs.log_step(run_id, {k: v[step] for k, v in values.items()}, step + 1)
        flush()
    (summary,) = summaries
    assert summary.best_metrics == {"layer2_loss": 1.0, "f1_loss": 0.2, "accum_loss": 7.0,
                                    "val/acc": 0.9, "f1": 0.8, "train/loss": 0.5}
    assert summary.final_metrics == {k: v[-1] for k, v in values.items()}
    assert history(run.info.run_id, "train/loss") == [(1, 2.0), (2, 0.5), (3, 1.0)]


def test_current_run_id_monitors_the_active_run_and_end_run_finishes_it(runs, summaries):
    with mlflow.start_run() as run:
        assert runs.current_run_id() == run.info.run_id
        assert runs.is_monitored(run.info.run_id)
    assert not runs.is_monitored(run.info.run_id)
    assert [(s.run_id, s.status) for s in summaries] == [(run.info.run_id, "FINISHED")]


def test_without_an_active_run_current_run_id_starts_an_owned_run_ended_as_finished(runs, summaries):
    run_id = runs.current_run_id()
    assert mlflow.active_run().info.run_id == run_id and runs.get(run_id).owned
    assert runs.current_run_id(start_if_missing=False) == run_id
    runs.end_owned_runs()
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient().get_run(run_id).info.status == "FINISHED"
    assert [s.status for s in summaries] == ["FINISHED"]


def test_a_run_marked_failed_is_summarised_as_failed(runs, summaries):
    with mlflow.start_run() as run:
        runs.current_run_id()
        runs.mark_failed(run.info.run_id, ValueError("bad batch"))
    assert [(s.status, s.error) for s in summaries] == [("FAILED", "ValueError: bad batch")]


def test_undo_restores_end_run_and_forgets_the_runs():
    original = mlflow.end_run
    patches = PatchRegistry()
    runs = MonitoredRuns(RunOptions(system_metrics=False, silent=True))
    runs.install(patches)
    assert mlflow.end_run is not original and mlflow.end_run.__wrapped__ is original
    with mlflow.start_run():
        run_id = runs.current_run_id()
        patches.undo_all()
        assert mlflow.end_run is original
        assert not runs.is_monitored(run_id)


def test_set_current_step_is_the_step_log_metrics_uses_by_default(runs):
    import mlflow_monitor

    try:
        with mlflow.start_run() as run:
            runs.set_current_step(7)
            mlflow_monitor.log_metrics({"val/accuracy": 0.5})
            flush()
    finally:
        runs.set_current_step(0)
    assert history(run.info.run_id, "val/accuracy") == [(7, 0.5)]
