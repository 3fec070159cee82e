"""Plateau: the loss has stopped improving."""

from __future__ import annotations

import collections
import math
from typing import Optional

from mlflow_monitor.formatting import format_number
from mlflow_monitor.health.rule import Finding, HealthRule, median


class Plateau(HealthRule):
    """Fires when the smoothed loss has not improved for ``patience`` steps.

    The loss is smoothed as the median of the last ``smooth`` points, so the best value
    is not one lucky mini-batch that the noisy loss never beats again. An improvement is
    a drop of more than ``min_delta``, or of ``min_rel_delta`` x the best value when that
    is larger. Steps are the logged ``step`` (or the count of points when there is none).
    Fires once per plateau; an improvement re-arms it.
    """

    name = "plateau"

    def __init__(self, metric: str = "train/loss", patience: int = 1000, min_delta: float = 1e-4,
                 min_rel_delta: float = 1e-3, smooth: int = 9) -> None:
        self.metrics = (metric,)
        self.patience = patience
        self.min_delta = min_delta
        self.min_rel_delta = min_rel_delta
        self.smooth = max(1, smooth)
        self.reset()

    def reset(self) -> None:
        self._best = math.inf
        self._best_step = 0
        self._count = 0
        self._fired = False
        self._recent: collections.deque[float] = collections.deque(maxlen=self.smooth)

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        self._count += 1
        now = step if step is not None else self._count
        if not math.isfinite(value):
            return None
        self._recent.append(value)
        smoothed = value if self.smooth == 1 else median(self._recent)
        delta = max(self.min_delta, self.min_rel_delta * abs(self._best)) if self._best != math.inf else 0.0
        if self._best == math.inf or smoothed < self._best - delta:
            self._best, self._best_step, self._fired = smoothed, now, False
            return None
        if self._fired or now - self._best_step < self.patience:
            return None
        self._fired = True
        return Finding(f"{key} has not improved by {self.min_delta:g} for {now - self._best_step} steps "
                       f"(best {format_number(self._best)} at step {self._best_step})", key, value, step)
