"""Step-time regression: steps got slower than they were at the start of the run."""

from __future__ import annotations

import collections
import math
from typing import Optional

from mlflow_monitor.health.rule import Finding, HealthRule, Latch, median


class StepTimeRegression(HealthRule):
    """Fires when the median of the last ``window`` step times > ``factor`` x the baseline.

    The baseline is the median of the ``baseline`` steps after ``warmup`` (skipping
    compilation and cache warm-up). Re-arms when the recent median is back under.
    """

    name = "step_time_regression"

    def __init__(self, metric: str = "train/step_time_s", factor: float = 1.5, warmup: int = 10,
                 baseline: int = 50, window: int = 50) -> None:
        self.metrics = (metric,)
        self.factor = factor
        self.warmup = warmup
        self.baseline_size = baseline
        self.window = window
        self.reset()

    def reset(self) -> None:
        self._baseline_points: list[float] = []
        self._baseline: Optional[float] = None
        self._recent: collections.deque[float] = collections.deque(maxlen=self.window)
        self._seen = 0
        self._latch = Latch()

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        if not math.isfinite(value) or value < 0:
            return None
        self._seen += 1
        if self._seen <= self.warmup:
            return None
        if self._baseline is None:
            self._baseline_points.append(value)
            if len(self._baseline_points) >= self.baseline_size:
                self._baseline = median(self._baseline_points)
                self._baseline_points = []
            return None
        self._recent.append(value)
        if len(self._recent) < (self._recent.maxlen or 1) or self._baseline <= 0:
            return None
        recent = median(self._recent)
        if not self._latch.update(recent > self.factor * self._baseline):
            return None
        return Finding(f"median step time {recent:.3g}s over the last {len(self._recent)} steps is "
                       f"{recent / self._baseline:.1f}x the baseline {self._baseline:.3g}s", key, recent, step)
