"""Divergence: the smoothed loss rises far above its recent level, beyond its own noise."""

from __future__ import annotations

import collections
import math
from typing import Optional

from mlflow_monitor.formatting import format_number
from mlflow_monitor.health.rule import Finding, HealthRule, Latch, median, robust_spread


class Divergence(HealthRule):
    """Fires when the loss, smoothed, stays far above its running level.

    - *Smoothed*: the median of the last ``smooth`` points, so one hard mini-batch (a
      spike of any size) never counts; half of the last ``smooth`` points must be high.
    - *Its running level*: the median of up to ``window`` points before those.
    - *Far above*: more than ``factor`` x the level (for a negative level: above it by
      ``factor - 1`` times its size) **and** more than ``z`` robust standard deviations
      (1.4826 x the MAD of the window) above it, so a noisy loss needs a bigger rise.
    - *Stays*: for ``persist`` points in a row.

    Needs ``min_points`` finite values first; re-arms when the smoothed loss is back
    under. NaN/Inf is :class:`~mlflow_monitor.health.nan_loss.NanLoss`'s business. The
    level and its spread are refreshed every ``smooth`` points (the rule costs ~1 us a point).
    """

    name = "divergence"

    def __init__(self, metric: str = "train/loss", factor: float = 3.0, window: int = 200,
                 min_points: int = 30, smooth: int = 9, z: float = 8.0, persist: int = 3) -> None:
        self.metrics = (metric,)
        self.factor = factor
        self.min_points = min_points
        self.window = window
        self.smooth = smooth
        self.z = z
        self.persist = persist
        self.reset()

    def reset(self) -> None:
        self._recent: collections.deque[float] = collections.deque(maxlen=self.smooth)
        self._history: collections.deque[float] = collections.deque(maxlen=self.window)
        self._level: Optional[float] = None
        self._limit = math.inf
        self._since_refresh = 0
        self._above = 0
        self._latch = Latch()

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        if not math.isfinite(value):
            return None
        recent = self._recent
        if len(recent) == recent.maxlen:
            self._history.append(recent[0])  # the reference holds only points older than the smoothing window
        recent.append(value)
        if len(self._history) < self.min_points or len(recent) < self.smooth:
            return None
        self._since_refresh += 1
        if self._level is None or self._since_refresh >= self.smooth:
            self._refresh()
        smoothed = median(recent)
        self._above = self._above + 1 if smoothed > self._limit else 0
        if not self._latch.update(self._above >= self.persist):
            return None
        level = self._level if self._level is not None else 0.0
        return Finding(
            f"{key} = {format_number(smoothed)} (median of the last {len(recent)} points) is above {self.factor:g}x "
            f"its running median {format_number(level)} and {self.z:g} noise widths over it "
            f"(last {len(self._history)} points before those)", key, value, step)

    def _refresh(self) -> None:
        self._since_refresh = 0
        history = list(self._history)
        level = median(history)
        spread = robust_spread(history, level)
        self._level = level
        if abs(level) <= 1e-12:
            self._limit = math.inf
            return
        self._limit = max(level + (self.factor - 1.0) * abs(level), level + self.z * spread)
