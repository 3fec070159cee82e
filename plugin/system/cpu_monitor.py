"""System-wide CPU utilisation and memory, under MLflow's metric names."""

from __future__ import annotations

import psutil
from mlflow_monitor.system.base_monitor import BaseMonitor


def _busy_and_total(times) -> tuple[float, float]:
    """Busy and total CPU seconds from a ``psutil.cpu_times()`` tuple (as htop/psutil count)."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    busy = total - times.idle - getattr(times, "iowait", 0.0)
    return busy, total


class CPUMonitor(BaseMonitor):
    """``cpu_utilization_percentage``, ``system_memory_usage_megabytes`` and ``_percentage``.

    CPU % is computed from our own ``cpu_times()`` deltas rather than
    ``psutil.cpu_percent()``, whose module-level state is shared with every other
    caller in the process (MLflow's monitor, Lightning's DeviceStatsMonitor) and
    would make both readings wrong.
    """

    name = "cpu"

    def __init__(self) -> None:
        self._last = _busy_and_total(psutil.cpu_times())

    def collect(self) -> dict[str, float]:
        busy, total = _busy_and_total(psutil.cpu_times())
        d_busy, d_total = busy - self._last[0], total - self._last[1]
        self._last = (busy, total)
        cpu = min(100.0, max(0.0, 100.0 * d_busy / d_total)) if d_total > 0 else 0.0
        mem = psutil.virtual_memory()
        return {
            "cpu_utilization_percentage": round(cpu, 1),
            "system_memory_usage_megabytes": mem.used / 1e6,
            "system_memory_usage_percentage": mem.used / mem.total * 100,
        }
