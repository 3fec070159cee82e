"""Per-second rates from monotonically increasing byte counters (disk and network I/O)."""

from __future__ import annotations

from collections.abc import Mapping

_MEGABYTE = 1e6  # MLflow's system metrics use decimal megabytes


class CounterRates:
    """Turns cumulative byte counters into MB/s rates over the time between two calls.

    A counter that goes backwards (reset, wrap, a disk that went away) gives a rate
    of 0.0 for that interval, never a negative one.
    """

    def __init__(self, counters: Mapping[str, float], now: float) -> None:
        self._last = dict(counters)
        self._last_t = now

    def update(self, counters: Mapping[str, float], now: float) -> dict[str, float]:
        """Rates in MB/s for each counter since the previous call (or the constructor)."""
        dt = now - self._last_t
        rates = {}
        for key, value in counters.items():
            delta = value - self._last.get(key, value)
            rates[key] = delta / dt / _MEGABYTE if dt > 0 and delta > 0 else 0.0
        self._last = dict(counters)
        self._last_t = now
        return rates
