"""GPU memory near its limit (an out-of-memory crash is likely next)."""

from __future__ import annotations

import re
from typing import Optional

from mlflow_monitor.health.rule import Finding, HealthRule, Latch

# system/gpu_0_memory_usage_percentage, or under DDP system/<node>/gpu_0_memory_usage_percentage
_GPU_MEMORY = re.compile(r"^system/(?:(?P<node>[^/]+)/)?gpu_(?P<gpu>\d+)_memory_usage_percentage$")


class GpuMemory(HealthRule):
    """Fires when a GPU's memory use goes over ``threshold`` %; re-arms under ``clear_below`` %."""

    name = "gpu_memory"

    def __init__(self, threshold: float = 95.0, clear_below: float = 90.0) -> None:
        self.threshold = threshold
        self.clear_below = clear_below
        self.reset()

    def reset(self) -> None:
        self._latches: dict[str, Latch] = {}

    def watches(self, key: str) -> bool:
        return _GPU_MEMORY.match(key) is not None

    def observe(self, key: str, value: float, step: Optional[int]) -> Optional[Finding]:
        latch = self._latches.setdefault(key, Latch())
        if latch.active and value >= self.clear_below:
            return None  # hysteresis: stay quiet until it really drops
        if not latch.update(value > self.threshold):
            return None
        m = _GPU_MEMORY.match(key)
        where = f"GPU {m['gpu']}" + (f" on node {m['node']}" if m and m["node"] else "") if m else key
        return Finding(f"{where} memory at {value:.1f}% (limit {self.threshold:g}%)", key, value, step)
