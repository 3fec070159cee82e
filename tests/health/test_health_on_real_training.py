"""The health rules on real training: no alert on healthy runs of many shapes, a NaN loss
alerted at its step, a real divergence (lr x100 mid-run) alerted within 50 steps."""

from __future__ import annotations

import itertools

import mlflow
import pytest
import torch

import mlflow_monitor
from mlflow_monitor import events
from mlflow_monitor.events import HealthAlert

# 20 healthy shapes: (hidden, lr, batch size, optimizer, task, label noise)
SHAPES = list(itertools.product((8, 64), (1e-3, 1e-2, 5e-2), (4, 16, 128), ("sgd", "adam"), ("cls", "reg")))[::3][:20]


@pytest.fixture
def alerts():
    seen: list[HealthAlert] = []
    unsubscribe = events.subscribe(seen.append, HealthAlert)
    mlflow_monitor.autolog(system_metrics=False, notify=False, health=True, sklearn=False, silent=True)
    yield seen
    unsubscribe()


def _train(seed: int, hidden: int, lr: float, batch: int, opt_name: str, task: str, steps: int = 400,
           nan_at: int = -1, lr_x100_at: int = -1) -> str:
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n_in = 8
    x = torch.randn(2048, n_in, generator=g)
    w = torch.randn(n_in, 1, generator=g)
    if task == "cls":
        y = ((x @ w).squeeze(1) + 0.8 * torch.randn(2048, generator=g) > 0).long()  # noisy labels
        out, loss_fn = 2, torch.nn.functional.cross_entropy
    else:
        y = x @ w + 0.5 * torch.randn(2048, 1, generator=g)
        out, loss_fn = 1, torch.nn.functional.mse_loss
    model = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, out))
    opt = (torch.optim.SGD if opt_name == "sgd" else torch.optim.Adam)(model.parameters(), lr=lr)
    with mlflow.start_run() as run:
        for step in range(steps):
            idx = torch.randint(0, 2048, (batch,), generator=g)
            loss = loss_fn(model(x[idx]), y[idx])
            if step == nan_at:
                loss = loss * float("nan")
            if step == lr_x100_at:
                for group in opt.param_groups:
                    group["lr"] *= 100
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert mlflow_monitor.flush(timeout=60)
    return run.info.run_id


@pytest.mark.slow
def test_no_health_alert_on_twenty_healthy_runs_of_different_shapes(alerts):
    for seed, shape in enumerate(SHAPES):
        _train(seed, *shape)
    assert [(a.rule, a.message) for a in alerts] == []


@pytest.mark.slow
def test_a_nan_loss_is_alerted_at_its_step(alerts):
    run_id = _train(0, 32, 1e-2, 16, "adam", "cls", steps=120, nan_at=77)
    nan = [a for a in alerts if a.rule == "nan_loss" and a.run_id == run_id]
    assert len(nan) == 1 and nan[0].step == 77 + 1  # autolog's step: optimizer steps done, counting this one


@pytest.mark.slow
def test_lr_times_100_mid_run_is_alerted_as_divergence_within_50_steps(alerts):
    change = 200
    run_id = _train(1, 32, 2e-2, 32, "sgd", "reg", steps=300, lr_x100_at=change)
    diverged = [a for a in alerts if a.rule == "divergence" and a.run_id == run_id]
    assert diverged, [(a.rule, a.step) for a in alerts]
    assert 0 < diverged[0].step - change <= 50
