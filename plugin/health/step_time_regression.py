"""Step-time regression: steps got lastingly slower than they were at the start of the run."""

from __future__ import annotations

import collections
import math
from typing import Optional

from mlflow_monitor.health.rule import Finding, HealthRule, Latch, median


class StepTimeRegression(HealthRule):
    """Fires when the rolling median step time stays above ``factor`` x the baseline.

    - *Baseline*: the median of the ``baseline`` steps after ``warmup`` (skipping
      compilation and cache warm-up).
    - *Rolling median*: of the last ``window`` steps, so a few slow steps (a checkpoint, a
      neighbour on a shared machine) do not count.
    - *Lastingly*: above ``factor`` x the baseline, and by at least ``min_increase_s``, at
      every check (every ``check_every`` steps) over ``persist`` steps **and**
      ``persist_s`` seconds of steps. On a shared machine a neighbour's job slows every
      step for a while; a regression of the training itself (a leak, a starving data
      loader) lasts. The default minute keeps the first quiet and still catches the second
      early in any run long enough for it to matter.

    Re-arms when the rolling median is back under.
    """

    name = "step_time_regression"

    def __init__(self, metric: str = "train/step_time_s", factor: float = 2.0, warmup: int = 20,
                 baseline: int = 50, window: int = 50, persist: int = 100, min_increase_s: float = 0.002,
                 check_every: int = 5, persist_s: float = 60.0) -> None:
        self.metrics = (metric,)
        self.factor = factor
        self.warmup = warmup
        self.baseline_size = baseline
        self.window = window
        self.persist = persist
        self.persist_s = persist_s
        self.min_increase_s = min_increase_s
        self.check_every = max(1, check_every)
        self.reset()

    def reset(self) -> None:
        self._baseline_points: list[float] = []
        self._baseline: Optional[float] = None
        self._recent: collections.deque[float] = collections.deque(maxlen=self.window)
        self._seen = 0
        self._slow_since: Optional[int] = None  # observation count when the median first went high
        self._slow_s = 0.0  # seconds of steps since then
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
        if self._slow_since is not None:
            self._slow_s += value
        if len(self._recent) < (self._recent.maxlen or 1) or self._baseline <= 0 or self._seen % self.check_every:
            return None
        recent = median(self._recent)
        slow = recent > self.factor * self._baseline and recent - self._baseline >= self.min_increase_s
        if not slow:
            self._slow_since, self._slow_s = None, 0.0
        elif self._slow_since is None:
            self._slow_since, self._slow_s = self._seen, 0.0
        lasting = (self._slow_since is not None and self._seen - self._slow_since >= self.persist
                   and self._slow_s >= self.persist_s)
        if not self._latch.update(lasting if slow else False):
            return None
        return Finding(f"median step time {recent:.3g}s over the last {len(self._recent)} steps is "
                       f"{recent / self._baseline:.1f}x the baseline {self._baseline:.3g}s "
                       f"(for {self._seen - (self._slow_since or self._seen)} steps, {self._slow_s:.0f}s)",
                       key, recent, step)
