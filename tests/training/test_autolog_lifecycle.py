"""autolog() itself: idempotent, exactly undone by disable, owns a run when none is active."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import pytest
import torch

import mlflow_monitor
from helpers.training import flush, history, train_loop
from helpers.training import quiet_autolog as _autolog

HERE = Path(__file__).parent


def test_autolog_called_twice_logs_exactly_one_point_per_step():
    _autolog()
    _autolog()
    with mlflow.start_run() as run:
        train_loop(steps=5)
    flush()
    assert [s for s, _ in history(run.info.run_id, "train/loss")] == [1, 2, 3, 4, 5]


def _patch_points() -> dict:
    """Every function or hook slot autolog may replace, as currently installed."""
    import lightning.pytorch as pl
    from mlflow.tracking import fluent
    from mlflow.utils.autologging_utils import AutologgingEventLogger
    from torch.utils.data import dataloader

    return {
        "backward": torch.Tensor.backward,
        "next": dataloader._BaseDataLoaderIter.__next__,
        "end_run": mlflow.end_run,
        "fluent.end_run": fluent.end_run,
        "Trainer.__init__": pl.Trainer.__init__,
        "event_logger": AutologgingEventLogger._event_logger,
    }


def test_disable_restores_every_original_function_and_hook():
    import lightning.pytorch as pl
    from torch.optim import optimizer as optim_mod
    from torch.utils.data import dataloader

    before = _patch_points()
    pre_hooks, post_hooks = len(optim_mod._global_optimizer_pre_hooks), len(optim_mod._global_optimizer_post_hooks)

    _autolog(sklearn=False)
    assert torch.Tensor.backward is not before["backward"]
    assert dataloader._BaseDataLoaderIter.__next__ is not before["next"]
    assert mlflow.end_run is not before["end_run"]
    assert pl.Trainer.__init__ is not before["Trainer.__init__"]
    assert len(optim_mod._global_optimizer_post_hooks) == post_hooks + 1

    mlflow_monitor.autolog(disable=True)
    after = _patch_points()
    assert all(after[k] is before[k] for k in before), {k for k in before if after[k] is not before[k]}
    assert len(optim_mod._global_optimizer_pre_hooks) == pre_hooks
    assert len(optim_mod._global_optimizer_post_hooks) == post_hooks

    with mlflow.start_run() as run:  # nothing is logged any more
        train_loop(steps=2)
    assert history(run.info.run_id, "train/loss") == []


def test_disable_undoes_the_sklearn_hook_and_the_mlflow_sklearn_autolog_it_enabled():
    import sklearn  # noqa: F401  (the sklearn part is installed when sklearn is imported)
    from mlflow.utils.autologging_utils import AutologgingEventLogger, autologging_is_disabled

    before = AutologgingEventLogger._event_logger
    _autolog(log_models=False)
    assert not autologging_is_disabled("sklearn")
    assert AutologgingEventLogger._event_logger is not before
    mlflow_monitor.autolog(disable=True)
    assert autologging_is_disabled("sklearn")
    assert AutologgingEventLogger._event_logger is before


def test_run_summary_has_final_and_best_training_metrics():
    from mlflow_monitor.events import RunSummary, subscribe

    summaries = []
    unsubscribe = subscribe(summaries.append, RunSummary)
    _autolog()
    try:
        with mlflow.start_run() as run:
            losses = train_loop(steps=6)
    finally:
        unsubscribe()
    assert len(summaries) == 1
    s = summaries[0]
    assert (s.run_id, s.status) == (run.info.run_id, "FINISHED")
    assert s.final_metrics["train/loss"] == pytest.approx(losses[-1], rel=1e-6)
    assert s.best_metrics["train/loss"] == pytest.approx(min(losses), rel=1e-6)
    assert s.duration_s > 0


def test_system_stats_are_sampled_into_the_training_run_while_it_is_active():
    from mlflow_monitor.events import RunSummary, subscribe

    summaries = []
    unsubscribe = subscribe(summaries.append, RunSummary)
    _autolog(system_metrics=True, system_metrics_interval_s=0.1)
    try:
        with mlflow.start_run() as run:
            train_loop(steps=3)
    finally:
        unsubscribe()
    metrics = mlflow.MlflowClient().get_run(run.info.run_id).data.metrics
    assert "system/cpu_utilization_percentage" in metrics
    assert "system/process_rss_megabytes" in metrics
    assert summaries[0].system_peaks.get("process_rss_megabytes", 0) > 0


_SCRIPT = """
import sys, mlflow, torch
mlflow.set_tracking_uri({uri!r})
import mlflow_monitor
from helpers.training import train_loop
mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True)
assert mlflow.active_run() is None
train_loop(steps=4)
print("RUN", mlflow.active_run().info.run_id, flush=True)
if {crash!r}:
    raise ValueError("crash after training")
"""


@pytest.mark.slow
@pytest.mark.parametrize("crash, status", [(False, "FINISHED"), (True, "FAILED")])
def test_without_an_active_run_one_is_started_and_ended_at_exit(tmp_path, tracking_uri, crash, status):
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(_SCRIPT.format(uri=tracking_uri, crash=crash)))
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}  # the subprocess imports tests/helpers
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240,
                          cwd=tmp_path, env=env)
    assert (proc.returncode != 0) == crash, proc.stderr[-3000:]
    run_id = next(line.split()[1] for line in proc.stdout.splitlines() if line.startswith("RUN "))
    assert mlflow.MlflowClient().get_run(run_id).info.status == status
    assert [s for s, _ in history(run_id, "train/loss")] == [1, 2, 3, 4]
