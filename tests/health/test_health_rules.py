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


def test_divergence_fires_when_the_smoothed_loss_stays_above_k_times_its_running_median():
    rule = Divergence(factor=3.0, window=50, min_points=20, smooth=5, persist=2)
    steady = [1.0 + 0.01 * (i % 5) for i in range(40)]
    fired = _feed(rule, "train/loss", steady + [5.0] * 8 + [1.0] * 10 + [6.0] * 8)
    # 5 high points make the median of 5 high (step 42), held 2 points (step 43); re-armed by the 1.0s
    assert [s for s, _ in fired] == [43, 61]
    assert "above 3x its running median" in fired[0][1].message


def test_divergence_ignores_single_spikes_of_any_size():
    rule = Divergence(min_points=20)
    values = [0.05 + 0.01 * (i % 3) for i in range(300)]
    for i in range(40, 300, 7):
        values[i] = 50.0  # a hard mini-batch every 7 steps
    assert _feed(rule, "train/loss", values) == []


def test_divergence_needs_a_rise_beyond_the_losss_own_noise():
    """A noisy loss (spread ~ its level) rising 3x is within its noise band; a quiet one is not."""
    import random

    rnd = random.Random(0)
    noisy = [max(0.0, 0.2 + rnd.gauss(0, 0.25)) for _ in range(200)] + [0.6 + rnd.gauss(0, 0.25) for _ in range(60)]
    assert _feed(Divergence(), "train/loss", noisy) == []
    quiet = [0.2 + rnd.gauss(0, 0.002) for _ in range(200)] + [0.8] * 20
    assert len(_feed(Divergence(), "train/loss", quiet)) == 1


def test_divergence_waits_for_enough_points_and_ignores_nan():
    rule = Divergence(min_points=20)
    assert _feed(rule, "train/loss", [1.0] * 5 + [100.0] * 5 + [math.nan]) == []


def test_plateau_fires_after_patience_steps_without_min_delta_improvement():
    rule = Plateau(patience=100, min_delta=0.01, smooth=1)
    values = [1.0 - 0.1 * i for i in range(5)] + [0.6 - 0.005 * (i % 3) for i in range(150)]
    fired = _feed(rule, "train/loss", values)
    assert [s for s, _ in fired] == [104]
    assert "has not improved by 0.01 for 100 steps" in fired[0][1].message


def test_plateau_rearms_after_an_improvement():
    rule = Plateau(patience=10, min_delta=0.0, min_rel_delta=0.0, smooth=1)
    fired = _feed(rule, "train/loss", [1.0] * 12 + [0.5] + [0.5] * 12)
    assert [s for s, _ in fired] == [10, 22]


def test_plateau_is_not_fooled_by_one_lucky_mini_batch():
    """The raw minimum is a lucky 0.01 at step 5; the smoothed loss keeps improving after it."""
    values = [1.0 - 0.0008 * i for i in range(400)]
    values[5] = 0.01
    assert _feed(Plateau(patience=100), "train/loss", values) == []
    assert len(_feed(Plateau(patience=100, smooth=1), "train/loss", values)) == 1


def test_step_time_regression_fires_when_the_rolling_median_stays_slow():
    rule = StepTimeRegression(factor=1.5, warmup=5, baseline=20, window=10, persist=20, check_every=1,
                              min_increase_s=0.01, persist_s=1.0)
    times = [5.0] * 5 + [0.1] * 20 + [0.3] * 15 + [0.1] * 20 + [0.3] * 40
    fired = _feed(rule, "train/step_time_s", times)
    assert len(fired) == 1  # the first slow stretch (15 steps) is shorter than persist; the second is not
    step, finding = fired[0]
    assert step == 84  # 0.3 s steps from step 60; the median of 10 is slow from step 64, held 20 steps
    assert "over the last 10 steps" in finding.message and "the baseline 0.1s" in finding.message


def test_step_time_regression_ignores_a_small_absolute_increase():
    rule = StepTimeRegression(warmup=5, baseline=20, window=10, persist=10, check_every=1, persist_s=0.0)
    times = [0.0002] * 25 + [0.0006] * 100  # 3x, but 0.4 ms: under min_increase_s
    assert _feed(rule, "train/step_time_s", times) == []


def test_step_time_regression_ignores_a_slowdown_shorter_than_persist_s():
    """A neighbour's job slows 3x for ~20 s of steps (a shared machine): no alert; for 70 s: one."""
    times = [0.1] * 70 + [0.3] * 70 + [0.1] * 100
    assert _feed(StepTimeRegression(), "train/step_time_s", times) == []
    times = [0.1] * 70 + [0.3] * 300
    assert len(_feed(StepTimeRegression(), "train/step_time_s", times)) == 1


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
