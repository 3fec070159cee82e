"""Plain PyTorch loops under mlflow_monitor.autolog(): what lands in the run, per step."""

from __future__ import annotations

import math
import sys

import mlflow
import pytest
import torch

import mlflow_monitor
from helpers.training import flush, history, train_loop
from helpers.training import quiet_autolog as _autolog


def test_each_optimizer_step_logs_its_loss_lr_step_time_and_throughput():
    _autolog()
    with mlflow.start_run() as run:
        losses = train_loop(steps=12)
    flush()
    rid = run.info.run_id
    logged = history(rid, "train/loss")
    assert [s for s, _ in logged] == list(range(1, 13))
    assert [v for _, v in logged] == pytest.approx(losses, rel=1e-6)
    assert history(rid, "train/lr") == [(s, pytest.approx(0.05)) for s in range(1, 13)]
    # step time and throughput need a previous step: from step 2 on
    assert [s for s, _ in history(rid, "train/step_time_s")] == list(range(2, 13))
    per_s = history(rid, "train/samples_per_s")
    times = dict(history(rid, "train/step_time_s"))
    assert [s for s, _ in per_s] == list(range(2, 13))
    assert all(v == pytest.approx(8 / times[s]) for s, v in per_s)  # batch of 8 per step


@pytest.mark.parametrize("accumulate", [1, 2, 4])
def test_gradient_accumulation_with_divided_loss_logs_the_mean_micro_batch_loss(accumulate):
    _autolog()
    with mlflow.start_run() as run:
        losses = train_loop(steps=5, accumulate=accumulate)  # (loss / accumulate).backward()
    flush()
    logged = history(run.info.run_id, "train/loss")
    assert [s for s, _ in logged] == [1, 2, 3, 4, 5]
    assert [v for _, v in logged] == pytest.approx(losses, rel=1e-6)


def test_gradient_accumulation_without_dividing_logs_the_sum_of_the_backwarded_losses():
    _autolog()
    with mlflow.start_run() as run:
        losses = train_loop(steps=4, accumulate=3, divide=False)
    flush()
    logged = history(run.info.run_id, "train/loss")
    assert [v for _, v in logged] == pytest.approx([3 * m for m in losses], rel=1e-6)
    per_s = dict(history(run.info.run_id, "train/samples_per_s"))
    times = dict(history(run.info.run_id, "train/step_time_s"))
    assert per_s[3] == pytest.approx(24 / times[3])  # 3 micro-batches of 8 samples


def test_nan_and_inf_losses_are_logged_as_they_are():
    bad = {2: float("nan"), 3: float("inf"), 4: float("-inf")}

    def poison(i, loss):
        return loss + bad[i] if i in bad else loss  # a constant: gradients stay finite

    _autolog()
    with mlflow.start_run() as run:
        train_loop(steps=6, loss_hook=poison)
    flush()
    values = dict(history(run.info.run_id, "train/loss"))
    assert sorted(values) == [1, 2, 3, 4, 5, 6]
    # the sqlite store keeps +/-inf as +/-sys.float_info.max: MLflow's own representation
    assert math.isnan(values[3])
    assert values[4] in (math.inf, sys.float_info.max)
    assert values[5] in (-math.inf, -sys.float_info.max)
    assert math.isfinite(values[6])


def test_backward_on_a_non_scalar_tensor_logs_no_loss_and_raises_nothing():
    _autolog()
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with mlflow.start_run() as run:
        for _ in range(3):
            out = model(torch.randn(2, 4))
            out.backward(torch.ones_like(out))  # non-scalar: needs an explicit gradient
            opt.step()
            opt.zero_grad()
    flush()
    assert history(run.info.run_id, "train/loss") == []
    assert [s for s, _ in history(run.info.run_id, "train/lr")] == [1, 2, 3]


def test_exception_raised_by_the_training_loop_propagates_unchanged_and_run_is_failed():
    from mlflow_monitor.events import RunSummary, subscribe

    summaries = []
    unsubscribe = subscribe(summaries.append, RunSummary)
    error = RuntimeError("boom in user code")

    def explode(i, loss):
        if i == 3:
            raise error
        return loss

    _autolog()
    try:
        with pytest.raises(RuntimeError) as caught:
            with mlflow.start_run() as run:
                train_loop(steps=6, loss_hook=explode)
    finally:
        unsubscribe()
    assert caught.value is error
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "FAILED"
    assert [s.status for s in summaries] == ["FAILED"]
    assert [s for s, _ in history(run.info.run_id, "train/loss")] == [1, 2, 3]


def test_one_lr_metric_per_param_group_when_there_are_several():
    _autolog()
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    opt = torch.optim.SGD([
        {"params": model[0].parameters(), "lr": 0.1},
        {"params": model[1].parameters(), "lr": 0.01},
    ])
    with mlflow.start_run() as run:
        for _ in range(2):
            model(torch.randn(3, 4)).sum().backward()
            opt.step()
    flush()
    rid = run.info.run_id
    assert history(rid, "train/lr/group_0") == [(1, pytest.approx(0.1)), (2, pytest.approx(0.1))]
    assert history(rid, "train/lr/group_1") == [(1, pytest.approx(0.01)), (2, pytest.approx(0.01))]
    assert history(rid, "train/lr") == []


def test_grad_norm_is_the_global_l2_norm_the_optimizer_sees_when_enabled():
    _autolog(log_grad_norm=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = []
    with mlflow.start_run() as run:
        for _ in range(3):
            opt.zero_grad()
            model(torch.randn(5, 4)).pow(2).mean().backward()
            grads = [p.grad.detach().flatten() for p in model.parameters()]
            expected.append(torch.cat(grads).norm().item())
            opt.step()
    flush()
    assert [v for _, v in history(run.info.run_id, "train/grad_norm")] == pytest.approx(expected, rel=1e-5)


def test_grad_norm_is_not_logged_by_default():
    _autolog()
    with mlflow.start_run() as run:
        train_loop(steps=3)
    flush()
    assert history(run.info.run_id, "train/grad_norm") == []


def test_log_every_n_steps_logs_only_every_nth_optimizer_step():
    _autolog(log_every_n_steps=3)
    with mlflow.start_run() as run:
        losses = train_loop(steps=9)
    flush()
    logged = history(run.info.run_id, "train/loss")
    assert [s for s, _ in logged] == [3, 6, 9]
    assert [v for _, v in logged] == pytest.approx([losses[2], losses[5], losses[8]], rel=1e-6)


def test_mlflow_monitor_log_metrics_lands_in_the_same_run_as_training_metrics():
    _autolog()
    with mlflow.start_run() as run:
        train_loop(steps=2)
        mlflow_monitor.log_metrics({"val/accuracy": 0.75}, step=2)
    flush()
    assert history(run.info.run_id, "val/accuracy") == [(2, 0.75)]


def test_log_metrics_without_step_uses_the_current_optimizer_step():
    _autolog()
    with mlflow.start_run() as run:
        train_loop(steps=5)
        mlflow_monitor.log_metrics({"val/accuracy": 0.5})
    flush()
    assert history(run.info.run_id, "val/accuracy") == [(5, 0.5)]
