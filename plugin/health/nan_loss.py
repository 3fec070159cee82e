"""NaN or Inf loss: training has blown up."""

from __future__ import annotations

import math
from typing import Optional

from mlflow_monitor.health.rule import Finding, HealthRule, Latch


class NanLoss(HealthRule):
    """Fires when a watched loss becomes NaN or +/-Inf; re-arms once it is finite again."""

    name = "nan_loss"

    def __init__(self, metrics: tuple[str, ...] = ("train/loss",)) -> None:
        self.metrics = tuple(metrics)
        self.reset()

    def reset(self) -> None:
        self._latches: dict[str, Latch] = {}

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        bad = not math.isfinite(value)
        if not self._latches.setdefault(key, Latch()).update(bad):
            return None
        where = f" at step {step}" if step is not None else ""
        return Finding(f"{key} is {value}{where}", key, value, step, severity="critical")
