"""Each health rule on its own: when it fires, that it fires once per episode, and its knobs."""

from __future__ import annotations

import math

from mlflow_monitor.health import Divergence, GpuMemory, NanLoss, Plateau, StepTimeRegression


def _feed(rule, key, values, start=0):
    return [(step, f) for step, v in enumerate(values, start) if (f := rule.observe(key, v, step)) is not None]


def test_nan_loss_fires_once_per_blow_up_and_rearms_when_finite_again():
    rule = NanLoss()
    fired = _feed(rule, "train/loss", [1.0, math.nan, math.nan, math.inf, 0.5, -math.inf])
    assert [s for s, _ in fired] == [1, 5]
    assert fired[0][1].severity == "critical" and "train/loss is nan at step 1" == fired[0][1].message
    assert rule.watches("train/loss") and not rule.watches("val/loss")


def test_nan_loss_watches_the_metrics_it_is_given():
    rule = NanLoss(metrics=("val/loss",))
    assert rule.watches("val/loss") and not rule.watches("train/loss")


def test_divergence_fires_when_loss_jumps_above_k_times_running_median():
    rule = Divergence(factor=3.0, window=50, min_points=20)
    steady = [1.0 + 0.01 * (i % 5) for i in range(30)]
    fired = _feed(rule, "train/loss", steady + [2.5, 3.5, 4.0, 1.0, 5.0])
    assert [s for s, _ in fired] == [31, 34]  # 3.5 > 3x median; stays diverged at 4.0; re-armed by 1.0
    assert "above 3x its running median" in fired[0][1].message


def test_divergence_waits_for_enough_points_and_ignores_nan():
    rule = Divergence(min_points=20)
    assert _feed(rule, "train/loss", [1.0] * 5 + [100.0, math.nan]) == []


def test_plateau_fires_after_patience_steps_without_min_delta_improvement():
    rule = Plateau(patience=100, min_delta=0.01)
    values = [1.0 - 0.1 * i for i in range(5)] + [0.6 - 0.005 * (i % 3) for i in range(150)]
    fired = _feed(rule, "train/loss", values)
    assert [s for s, _ in fired] == [104]
    assert "has not improved by 0.01 for 100 steps" in fired[0][1].message


def test_plateau_rearms_after_an_improvement():
    rule = Plateau(patience=10, min_delta=0.0)
    fired = _feed(rule, "train/loss", [1.0] * 12 + [0.5] + [0.5] * 12)
    assert [s for s, _ in fired] == [10, 22]


def test_step_time_regression_compares_recent_median_with_the_baseline():
    rule = StepTimeRegression(factor=1.5, warmup=5, baseline=20, window=10)
    times = [5.0] * 5 + [0.1] * 20 + [0.11] * 10 + [0.2] * 10 + [0.1] * 10 + [0.3] * 10
    fired = _feed(rule, "train/step_time_s", times)
    assert len(fired) == 2  # slow, recovered, slow again; warm-up 5.0s steps ignored
    step, finding = fired[0]
    assert 35 <= step < 45 and finding.value > 0.15  # fired while the 0.2 s steps took over the window
    assert "over the last 10 steps" in finding.message and "the baseline 0.1s" in finding.message


def test_gpu_memory_fires_over_threshold_per_gpu_with_hysteresis_and_ddp_names():
    rule = GpuMemory(threshold=95.0, clear_below=90.0)
    assert rule.watches("system/gpu_0_memory_usage_percentage")
    assert rule.watches("system/node-1/gpu_3_memory_usage_percentage")
    assert not rule.watches("system/gpu_0_utilization_percentage")
    key = "system/gpu_0_memory_usage_percentage"
    fired = _feed(rule, key, [50, 96, 97, 94, 96, 80, 99])
    assert [s for s, _ in fired] == [1, 6]  # 94 is not below 90: still the same episode
    other = rule.observe("system/node-1/gpu_3_memory_usage_percentage", 98.0, 1)
    assert other is not None and other.message == "GPU 3 on node node-1 memory at 98.0% (limit 95%)"


def test_fresh_copy_keeps_knobs_but_not_state():
    rule = NanLoss()
    rule.observe("train/loss", math.nan, 1)
    copy = rule.fresh()
    assert copy.observe("train/loss", math.nan, 2) is not None
