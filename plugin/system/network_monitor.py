"""Network traffic since the sampler started (MLflow's names) and its rates (ours)."""

from __future__ import annotations

import time

import psutil
from mlflow_monitor.system.base_monitor import BaseMonitor
from mlflow_monitor.system.rates import CounterRates


def _net_counters() -> dict[str, float]:
    io = psutil.net_io_counters()  # all interfaces, loopback included, wrap-corrected
    return {"receive": float(io.bytes_recv), "transmit": float(io.bytes_sent)}


class NetworkMonitor(BaseMonitor):
    """``network_{receive,transmit}_megabytes`` (cumulative since start, as MLflow logs them)
    and ``network_{receive,transmit}_megabytes_per_second``."""

    name = "network"

    def __init__(self) -> None:
        self._initial = _net_counters()
        self._rates = CounterRates(self._initial, time.monotonic())

    def collect(self) -> dict[str, float]:
        counters = _net_counters()
        rates = self._rates.update(counters, time.monotonic())
        return {
            "network_receive_megabytes": (counters["receive"] - self._initial["receive"]) / 1e6,
            "network_transmit_megabytes": (counters["transmit"] - self._initial["transmit"]) / 1e6,
            "network_receive_megabytes_per_second": rates["receive"],
            "network_transmit_megabytes_per_second": rates["transmit"],
        }
