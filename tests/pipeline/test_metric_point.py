"""The one point shape: MetricPoint, its on-disk row, and buffer entries materialised into points."""

from __future__ import annotations

import math
import time

import pytest
import torch

from mlflow_monitor.metrics import MetricPoint
from mlflow_monitor.metrics.materialize import materialize
from mlflow_monitor.metrics.point import now_ms


def test_metric_point_fields_are_run_key_value_step_timestamp_ms():
    p = MetricPoint("run", "train/loss", 0.5, 7, 1_700_000_000_123)
    assert p._fields == ("run_id", "key", "value", "step", "timestamp_ms")
    assert (p.run_id, p.key, p.value, p.step, p.timestamp_ms) == ("run", "train/loss", 0.5, 7, 1_700_000_000_123)


def test_the_on_disk_row_keeps_the_spool_format_and_round_trips():
    p = MetricPoint("run", "loss", 0.25, 3, 1000)
    assert p.to_row() == ["run", "loss", 0.25, 1000, 3]  # [run_id, key, value, timestamp_ms, step]
    assert MetricPoint.from_row(p.to_row()) == p


@pytest.mark.parametrize("row", [["run", "loss", 1.0, 5], "not a row", [1, "loss", 1.0, 5, 0], None])
def test_a_row_that_is_not_a_point_is_refused(row):
    with pytest.raises(ValueError):
        MetricPoint.from_row(row)


def test_rows_and_groups_become_points_in_order_with_float_values_and_int_steps():
    entries = [
        ("r", "a", 1, 0, 1000),  # an int value
        ("r", {"b": 2.5, "c": True}, None, 2000),  # a group; a missing step is step 0
        ("s", "d", 3.5, 4, 3000),
    ]
    points = materialize(entries)
    assert points == [
        MetricPoint("r", "a", 1.0, 0, 1000),
        MetricPoint("r", "b", 2.5, 0, 2000),
        MetricPoint("r", "c", 1.0, 0, 2000),
        MetricPoint("s", "d", 3.5, 4, 3000),
    ]
    assert all(type(p) is MetricPoint and type(p.value) is float and type(p.step) is int for p in points)


def test_tensors_are_read_as_floats_and_unreadable_values_are_rejected_alone():
    rejected: list = []
    points = materialize([
        ("r", "t", torch.tensor(2.5), 1, 10),
        ("r", {"u": torch.tensor([4.0]), "v": torch.ones(3)}, 1, 10),  # [4.0]: one number; ones(3): not a scalar
        ("r", "w", "high", 1, 10),
        ("r", "x", 10**400, 1, 10),
    ], rejected)
    assert [(p.key, p.value) for p in points] == [("t", 2.5), ("u", 4.0)]
    reasons = {p.key: reason for p, reason in rejected}
    assert set(reasons) == {"v", "w", "x"}
    assert "shape (3,)" in reasons["v"] and "not a number" in reasons["w"]
    assert "1e400" in reasons["x"] and "out of the range" in reasons["x"]


@pytest.mark.parametrize("step, why", [
    (2**70, "out of range"), (-(2**63) - 1, "out of range"), (math.nan, "not a finite integer"),
    (1.5, "not a finite integer"), ("3", "not an integer"),
])
def test_a_step_mlflow_cannot_store_is_rejected_alone(step, why):
    rejected: list = []
    points = materialize([("r", "a", 1.0, 0, 10), ("r", "b", 2.0, step, 10), ("r", {"c": 3.0, "d": 4.0}, step, 10),
                          ("r", {"e": 5.0}, 7.0, 10)], rejected)
    assert [(p.key, p.step) for p in points] == [("a", 0), ("e", 7)]
    assert [p.key for p, _ in rejected] == ["b", "c", "d"]
    assert all(why in reason for _, reason in rejected)


def test_points_that_are_already_floats_pass_through_unchanged():
    row = ("r", "a", 0.5, 1, 10)
    (point,) = materialize([row])
    assert tuple(point) == row


def test_now_ms_is_wall_clock_integer_milliseconds():
    before = int(time.time() * 1000)
    ms = now_ms()
    assert type(ms) is int and before - 1 <= ms <= int(time.time() * 1000) + 1
