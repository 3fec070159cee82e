"""Plateau: the loss has stopped improving."""

from __future__ import annotations

import math
from typing import Optional

from mlflow_monitor.formatting import format_number
from mlflow_monitor.health.rule import Finding, HealthRule


class Plateau(HealthRule):
    """Fires when the loss has not improved by ``min_delta`` for ``patience`` steps.

    Steps are the logged ``step`` (or the count of points when there is none). Fires
    once per plateau; an improvement re-arms it.
    """

    name = "plateau"

    def __init__(self, metric: str = "train/loss", patience: int = 1000, min_delta: float = 1e-4) -> None:
        self.metrics = (metric,)
        self.patience = patience
        self.min_delta = min_delta
        self.reset()

    def reset(self) -> None:
        self._best = math.inf
        self._best_step = 0
        self._count = 0
        self._fired = False

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        self._count += 1
        now = step if step is not None else self._count
        if not math.isfinite(value):
            return None
        if value < self._best - self.min_delta or self._best == math.inf:
            self._best, self._best_step, self._fired = value, now, False
            return None
        if self._fired or now - self._best_step < self.patience:
            return None
        self._fired = True
        return Finding(f"{key} has not improved by {self.min_delta:g} for {now - self._best_step} steps "
                       f"(best {format_number(self._best)} at step {self._best_step})", key, value, step)
