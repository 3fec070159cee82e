"""Utilisation, memory, power and temperature of the visible NVIDIA GPUs, via nvidia-ml-py."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

from mlflow_monitor.system.base_monitor import BaseMonitor
from mlflow_monitor.system.visible_gpus import ENV_VISIBLE, resolve_visible_gpus

_logger = logging.getLogger(__name__)


class GPUUnavailable(RuntimeError):
    """No usable NVIDIA GPU: nvidia-ml-py missing, no driver, or none visible."""


def _load_nvml() -> ModuleType:
    try:
        import pynvml
    except ImportError as e:
        raise GPUUnavailable("nvidia-ml-py is not installed (pip install 'mlflow-monitor[gpu]')") from e
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class GPUMonitor(BaseMonitor):
    """MLflow's ``gpu_{i}_utilization_percentage``, ``gpu_{i}_memory_usage_{megabytes,percentage}``,
    ``gpu_{i}_power_usage_{watts,percentage}``, plus ``gpu_{i}_temperature_celsius``.

    Only GPUs visible through ``CUDA_VISIBLE_DEVICES`` are reported and ``i`` is the
    CUDA index (what ``torch.device(f"cuda:{i}")`` means in this process). NVML is
    initialised once here, handles are cached, and ``close()`` shuts it down. A
    reading the device does not support (power on some boards, MIG) is dropped
    for that device after the first try.

    Raises :class:`GPUUnavailable` when there is nothing to monitor.
    """

    name = "gpu"

    def __init__(self, visible_devices: str | None = None, nvml: ModuleType | None = None) -> None:
        """``visible_devices`` defaults to ``$CUDA_VISIBLE_DEVICES``; ``nvml`` to ``pynvml``."""
        self._nvml = nvml or _load_nvml()
        try:
            self._nvml.nvmlInit()
        except self._nvml.NVMLError as e:
            raise GPUUnavailable(f"NVML failed to initialise (no NVIDIA driver or GPU?): {e}") from e
        self._open = True
        try:
            if visible_devices is None:
                visible_devices = os.environ.get(ENV_VISIBLE)
            physical = [
                self._nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self._nvml.nvmlDeviceGetCount())
            ]
            uuids = [_text(self._nvml.nvmlDeviceGetUUID(h)) for h in physical]
            self._handles = [physical[i] for i in resolve_visible_gpus(visible_devices, uuids)]
            if not self._handles:
                raise GPUUnavailable(
                    f"no GPU visible ({ENV_VISIBLE}={visible_devices!r}, {len(physical)} present)"
                )
            self._power_limit_mw = [self._power_limit(h) for h in self._handles]
        except BaseException:
            self.close()
            raise
        self._unsupported: set[tuple[int, str]] = set()

    def _power_limit(self, handle: Any) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
        except self._nvml.NVMLError:
            return None

    def _read(self, i: int, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, or None if GPU ``i`` does not support it (remembered, logged once)."""
        if (i, what) in self._unsupported:
            return None
        try:
            return fn(*args)
        except self._nvml.NVMLError_NotSupported:
            _logger.debug("mlflow-monitor: GPU %d does not report %s; skipping it", i, what)
            self._unsupported.add((i, what))
            return None

    def collect(self) -> dict[str, float]:
        nvml = self._nvml
        out: dict[str, float] = {}
        for i, h in enumerate(self._handles):
            util = self._read(i, "utilization", nvml.nvmlDeviceGetUtilizationRates, h)
            if util is not None:
                out[f"gpu_{i}_utilization_percentage"] = float(util.gpu)
            mem = self._read(i, "memory", nvml.nvmlDeviceGetMemoryInfo, h)
            if mem is not None:
                out[f"gpu_{i}_memory_usage_megabytes"] = mem.used / 1e6
                out[f"gpu_{i}_memory_usage_percentage"] = round(mem.used / mem.total * 100, 1)
            power_mw = self._read(i, "power", nvml.nvmlDeviceGetPowerUsage, h)
            if power_mw is not None:
                out[f"gpu_{i}_power_usage_watts"] = power_mw / 1000
                if self._power_limit_mw[i]:
                    out[f"gpu_{i}_power_usage_percentage"] = power_mw / self._power_limit_mw[i] * 100
            temp = self._read(i, "temperature", nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU)
            if temp is not None:
                out[f"gpu_{i}_temperature_celsius"] = float(temp)
        return out

    def close(self) -> None:
        if getattr(self, "_open", False):
            self._open = False
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError:
                _logger.debug("mlflow-monitor: nvmlShutdown failed", exc_info=True)
