"""Disk usage (MLflow's names) and disk read/write rates (ours)."""

from __future__ import annotations

import os
import time

import psutil
from mlflow_monitor.system.base_monitor import BaseMonitor
from mlflow_monitor.system.rates import CounterRates


def _io_counters() -> dict[str, float] | None:
    # None where the OS exposes no disk stats (some containers). Linux disk counters are
    # 64-bit, so psutil's wrap bookkeeping (a quarter of the call's cost) is skipped;
    # CounterRates turns a reset into one 0.0 rate.
    io = psutil.disk_io_counters(nowrap=False)
    if io is None:
        return None
    return {"read": float(io.read_bytes), "write": float(io.write_bytes)}


class DiskMonitor(BaseMonitor):
    """``disk_usage_{megabytes,percentage}``, ``disk_available_megabytes`` of ``path``
    (``/`` like MLflow), plus ``disk_{read,write}_megabytes_per_second`` over all disks."""

    name = "disk"

    def __init__(self, path: str = os.sep) -> None:
        self._path = path
        counters = _io_counters()
        self._rates = CounterRates(counters, time.monotonic()) if counters else None

    def collect(self) -> dict[str, float]:
        usage = psutil.disk_usage(self._path)
        out = {
            "disk_usage_percentage": usage.percent,
            "disk_usage_megabytes": usage.used / 1e6,
            "disk_available_megabytes": usage.free / 1e6,
        }
        if self._rates is not None:
            counters = _io_counters()
            if counters is not None:
                rates = self._rates.update(counters, time.monotonic())
                out["disk_read_megabytes_per_second"] = rates["read"]
                out["disk_write_megabytes_per_second"] = rates["write"]
        return out
