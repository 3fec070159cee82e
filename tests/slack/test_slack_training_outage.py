"""Slack is down for a whole training run: training completes, alerts are dead-lettered, replay delivers."""

from __future__ import annotations

import json

import mlflow
import torch
from click.testing import CliRunner
from helpers.slack_stub import FAST_SETTINGS as FAST
from mlflow.tracking import MlflowClient

import mlflow_monitor
from mlflow_monitor import paths
from mlflow_monitor.cli import main


def _train(steps: int, nan_from: int) -> int:
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    done = 0
    for step in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        if step >= nan_from:
            loss = loss * float("nan")  # the run blows up
        loss.backward()
        opt.step()
        done += 1
    return done


def test_training_survives_slack_outage_and_replay_delivers_later(webhook_env, mlflow_db):
    webhook_env.fail_next(None, status=503)  # Slack down from the start
    mlflow_monitor.autolog(notify={**FAST, "max_retries": 1}, system_metrics=False, silent=True)
    with mlflow.start_run() as run:
        assert _train(steps=40, nan_from=25) == 40  # training completed despite Slack
    mlflow_monitor.autolog(disable=True, silent=True)  # flushes the notifier (bounded)

    dead_file = paths.dead_letter_dir() / "slack.jsonl"
    entries = [json.loads(line) for line in dead_file.read_text().splitlines()]
    kinds = sorted(e["message"]["kind"] for e in entries)
    assert kinds == ["health_alert", "run_summary"]
    assert all("503" in e["reason"] for e in entries)
    assert "nan" in MlflowClient().get_run(run.info.run_id).data.tags["mlflow_monitor.health.nan_loss"]
    assert webhook_env.messages == []

    webhook_env.clear_faults()  # Slack is back
    result = CliRunner().invoke(main, ["slack", "replay"])
    assert result.exit_code == 0, result.output
    msgs = webhook_env.wait_for_messages(2)
    assert len(msgs) == 2
    assert "nan_loss" in msgs[0]["text"] and msgs[1]["text"].startswith("Run finished")
    assert not dead_file.exists() or dead_file.read_text() == ""
