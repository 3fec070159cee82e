"""The tiny base class every system-stats source implements."""

from __future__ import annotations

import abc


class BaseMonitor(abc.ABC):
    """One source of system stats (CPU, process, disk, network, GPU).

    ``collect()`` is called on the sampler thread once per sample and returns
    ``{metric_name: value}`` with names *without* the ``system/`` prefix.
    It must be cheap and non-blocking; raising disables the monitor for the rest
    of the run (the sampler logs it once). ``close()`` releases resources.
    """

    #: short name used in log lines ("cpu", "gpu", ...)
    name: str = "monitor"

    @abc.abstractmethod
    def collect(self) -> dict[str, float]:
        """Read the source once; return metric name -> value."""

    def close(self) -> None:
        """Release what the monitor holds (handles, libraries). Idempotent."""
