"""Training goes on while the tracking server is down; every step's loss arrives once."""

from __future__ import annotations

import mlflow
import pytest

import mlflow_monitor
from helpers.training import history, tiny_data


@pytest.mark.slow
def test_every_step_loss_is_in_the_run_exactly_once_in_order_after_a_server_outage(mlflow_server):
    srv = mlflow_server()
    mlflow.set_tracking_uri(srv.url)
    mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True)
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = tiny_data(n=8 * 90)
    with mlflow.start_run() as run:
        for i, (x, y) in enumerate(data):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if i == 29:
                assert mlflow_monitor.flush(timeout=30)  # the first 30 are in, then the outage
                srv.stop()
            if i == 59:
                srv.restart()
        # the run ends while the server is up again
    assert mlflow_monitor.flush(timeout=60)
    steps = [s for s, _ in history(run.info.run_id, "train/loss")]
    assert steps == list(range(1, 91))
