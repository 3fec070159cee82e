"""Divergence: the loss jumps far above its running median."""

from __future__ import annotations

import collections
import math
from typing import Optional

from mlflow_monitor.formatting import format_number
from mlflow_monitor.health.rule import Finding, HealthRule, Latch, median


class Divergence(HealthRule):
    """Fires when loss > ``factor`` x its running median over the last ``window`` points.

    (For a negative median: when loss exceeds the median by ``factor - 1`` times its size.)
    Needs ``min_points`` finite values first; re-arms when the loss comes back down.
    """

    name = "divergence"

    def __init__(self, metric: str = "train/loss", factor: float = 3.0, window: int = 100,
                 min_points: int = 20) -> None:
        self.metrics = (metric,)
        self.factor = factor
        self.min_points = min_points
        self.window = window
        self.reset()

    def reset(self) -> None:
        self._recent: collections.deque[float] = collections.deque(maxlen=self.window)
        self._latch = Latch()

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        if not math.isfinite(value):
            return None  # NaN/Inf is NanLoss's business
        finding = None
        if len(self._recent) >= self.min_points:
            med = median(self._recent)
            limit = med + (self.factor - 1.0) * abs(med)
            if self._latch.update(abs(med) > 1e-12 and value > limit):
                finding = Finding(
                    f"{key} = {format_number(value)} is above {self.factor:g}x its running median "
                    f"{format_number(med)} "
                    f"(last {len(self._recent)} points)", key, value, step)
        self._recent.append(value)
        return finding
