"""The common optimizer step is queued as its facts (a StepRow) and its metrics are derived
on the flusher thread. Oracle: the general path (``StepMetrics.collect``, the dict it
queues), fed the same facts or the same training loop, must give the same points."""

from __future__ import annotations

import gc
import itertools

import mlflow
import pytest
import torch

from helpers.training import flush, history, tiny_data
from helpers.training import quiet_autolog as _autolog
from mlflow_monitor.integrations.torch import StepMetrics, active_hooks
from mlflow_monitor.metrics.materialize import materialize
from mlflow_monitor.metrics.step_row import STEP_ROW_FIELDS, step_row_metrics
from mlflow_monitor.runs import MonitoredRuns

# (prev_end, start, end, samples): a run's first step; no batch seen; a batch fetched
# before the previous step ended (a prefetching loader); a long gap (eval) before the
# batch; a short gap; no samples; a zero-length step.
TIMINGS = [
    (None, 10.0, 10.5, 8),
    (10.0, None, 10.5, 8),
    (10.0, 9.5, 10.5, 8),
    (10.0, 12.0, 12.5, 8),
    (10.0, 10.01, 10.5, 8),
    (10.0, 10.2, 10.5, 0),
    (10.0, None, 10.0, 8),
]
LOSSES = [None, 0.731, torch.tensor(0.25)]


def _collected(loss, lr, prev_end, start, end, samples) -> dict:
    acc = StepMetrics()
    acc.loss_sum, acc.last_step_end, acc.step_start, acc.samples = loss, prev_end, start, samples
    return acc.collect([{"lr": lr, "params": []}], end)


@pytest.mark.parametrize("timing,loss", list(itertools.product(TIMINGS, LOSSES)))
def test_a_step_rows_metrics_are_the_general_paths_metrics_for_the_same_facts(timing, loss):
    row = ("run", 7, 1_700_000_000_000, loss, 0.01, *timing)
    assert len(row) == STEP_ROW_FIELDS
    assert step_row_metrics(row) == list(_collected(loss, 0.01, *timing).items())  # keys, values and order


def test_materialize_turns_a_step_row_into_the_points_of_the_same_group():
    loss = torch.tensor(0.5)  # an accelerator's loss stays a tensor: read here, like a group's
    row = ("run", 3, 1_700_000_000_123, loss, 0.02, 10.0, 10.01, 10.6, 16)
    group = ("run", _collected(loss, 0.02, 10.0, 10.01, 10.6, 16), 3, 1_700_000_000_123)
    from_row, from_group = materialize([row]), materialize([group])
    assert from_row == from_group
    assert [p.key for p in from_row] == ["train/loss", "train/lr", "train/step_time_s", "train/samples_per_s"]
    assert all(type(p.value) is float and p.step == 3 for p in from_row)


def test_the_rows_a_cpu_loop_queues_are_left_alone_by_the_garbage_collector(monkeypatch):
    rows = []
    log_step_row = MonitoredRuns.log_step_row
    monkeypatch.setattr(MonitoredRuns, "log_step_row", staticmethod(lambda row: (rows.append(row), log_step_row(row))))
    _autolog()
    with mlflow.start_run():
        _loop(6, 1)
    flush()
    assert len(rows) == 5
    gc.collect()  # a tuple of strings, numbers and None is untracked at its first collection;
    assert not any(gc.is_tracked(row) for row in rows)  # a tensor or any object in a row would keep it tracked


def _loop(steps: int, accumulate: int) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)  # lr changes every other step
    for i, (x, y) in enumerate(tiny_data(n=8 * steps * accumulate)):
        (torch.nn.functional.mse_loss(model(x), y) / accumulate).backward()
        if (i + 1) % accumulate == 0:
            opt.step()
            opt.zero_grad()
            sched.step()


def _run(monkeypatch, fast: bool, steps: int, accumulate: int, every: int) -> tuple[str, int]:
    rows = []
    log_step_row = MonitoredRuns.log_step_row
    monkeypatch.setattr(MonitoredRuns, "log_step_row", staticmethod(lambda row: (rows.append(row), log_step_row(row))))
    _autolog(log_every_n_steps=every)
    if not fast:  # every step through the general path (the oracle)
        hooks = active_hooks()
        hooks._fast_allowed = hooks._fast_step = False
    with mlflow.start_run() as run:
        _loop(steps, accumulate)
    flush()
    monkeypatch.setattr(MonitoredRuns, "log_step_row", log_step_row)
    return run.info.run_id, len(rows)


@pytest.mark.parametrize("accumulate,every", [(1, 1), (2, 3)])
def test_a_loop_logs_the_same_points_through_step_rows_as_through_the_general_path(monkeypatch, accumulate, every):
    steps = 12
    fast_id, fast_rows = _run(monkeypatch, True, steps, accumulate, every)
    slow_id, slow_rows = _run(monkeypatch, False, steps, accumulate, every)
    logged = [s for s in range(1, steps + 1) if s % every == 0]
    # the run's first step is a new run (the general path); every later logged step is a row
    assert fast_rows == len([s for s in logged if s > 1]) and slow_rows == 0
    for key in ("train/loss", "train/lr"):  # the same seeded loop: equal values, exactly
        assert history(fast_id, key) == history(slow_id, key) and [s for s, _ in history(fast_id, key)] == logged
    if every == 1:  # the lr read at each step, before the scheduler changes it
        assert {v for _, v in history(fast_id, "train/lr")} == {0.1, 0.05, 0.025, 0.0125, 0.00625, 0.003125}
    for rid in (fast_id, slow_id):
        times = dict(history(rid, "train/step_time_s"))
        per_s = dict(history(rid, "train/samples_per_s"))
        assert list(times) == [s for s in logged if s > 1] == list(per_s)  # no step time at the first step
        assert all(per_s[s] * times[s] == pytest.approx(8 * accumulate, rel=1e-6) for s in times)


def test_a_new_run_between_steps_of_one_optimizer_gets_its_own_steps_from_1(monkeypatch):
    rows = []
    log_step_row = MonitoredRuns.log_step_row
    monkeypatch.setattr(MonitoredRuns, "log_step_row", staticmethod(lambda row: (rows.append(row), log_step_row(row))))
    _autolog()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = iter(tiny_data(n=8 * 10))
    losses: dict[str, list[float]] = {}
    for name in ("a", "b"):
        with mlflow.start_run() as run:
            for _ in range(5):  # the same optimizer and loader in both runs
                x, y = next(data)
                loss = torch.nn.functional.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.setdefault(run.info.run_id, []).append(loss.item())
    flush()
    assert len(rows) == 8 and {r[0] for r in rows} == set(losses)  # steps 2-5 of each run were rows
    for rid, expected in losses.items():
        assert history(rid, "train/loss") == [(s, pytest.approx(v)) for s, v in enumerate(expected, 1)]
        assert [s for s, _ in history(rid, "train/step_time_s")] == [2, 3, 4, 5]  # none across the runs
