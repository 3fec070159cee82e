"""CUDA_VISIBLE_DEVICES handling and the GPU monitor's mapping to CUDA indices."""

from __future__ import annotations

import pytest
from mlflow_monitor.system.gpu_monitor import GPUMonitor, GPUUnavailable
from mlflow_monitor.system.visible_gpus import parse_cuda_visible_devices, resolve_visible_gpus

UUIDS = ["GPU-aaaa1111-0000", "GPU-bbbb2222-0000", "GPU-aaaa3333-0000"]


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", []),
        ("0,2", [0, 2]),
        (" 1 , 0 ", [1, 0]),
        ("GPU-bbbb2222,1", ["GPU-bbbb2222", 1]),
        ("0,-1,2", [0]),
        ("0,abc,2", [0]),
        ("MIG-xyz", ["MIG-xyz"]),
    ],
)
def test_parse_cuda_visible_devices_follows_cuda_rules(value, expected):
    assert parse_cuda_visible_devices(value) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, [0, 1, 2]),  # unset: all
        ("", []),  # empty: none
        ("2,0", [2, 0]),  # order defines the CUDA index
        ("GPU-bbbb", [1]),  # unique UUID prefix
        ("gpu-AAAA3333-0000,0", [2, 0]),  # case-insensitive
        ("GPU-aaaa,1", []),  # ambiguous prefix ends the list
        ("1,7,0", [1]),  # out of range ends the list
        ("1,1,0", [1]),  # repeated entry ends the list
        ("MIG-1234,0", []),  # MIG instances are not whole GPUs
    ],
)
def test_resolve_visible_gpus_maps_entries_to_nvml_indices(value, expected):
    assert resolve_visible_gpus(value, UUIDS) == expected


class FakeNVML:
    """Stands in for the NVIDIA driver (absent on CI): three GPUs; GPU 1 has no power sensor."""

    NVML_TEMPERATURE_GPU = 0

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    def __init__(self, fail_init=False):
        self.fail_init, self.inits, self.shutdowns, self.power_reads = fail_init, 0, 0, 0

    def nvmlInit(self):
        if self.fail_init:
            raise self.NVMLError("Driver Not Loaded")
        self.inits += 1

    def nvmlShutdown(self):
        self.shutdowns += 1

    def nvmlDeviceGetCount(self):
        return 3

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUUID(self, h):
        return UUIDS[h].encode()  # older nvidia-ml-py returns bytes

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("U", (), {"gpu": 10 * (h + 1)})()

    def nvmlDeviceGetMemoryInfo(self, h):
        return type("M", (), {"used": (h + 1) * 1_000_000_000, "total": 80_000_000_000})()

    def nvmlDeviceGetPowerUsage(self, h):
        self.power_reads += 1
        if h == 1:
            raise self.NVMLError_NotSupported("Not Supported")
        return 350_000

    def nvmlDeviceGetEnforcedPowerLimit(self, h):
        return 700_000

    def nvmlDeviceGetTemperature(self, h, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 40 + h


def test_gpu_monitor_reports_only_visible_gpus_under_their_cuda_index():
    nvml = FakeNVML()
    monitor = GPUMonitor(visible_devices="2,GPU-bbbb", nvml=nvml)
    metrics = monitor.collect()
    # cuda:0 is physical GPU 2, cuda:1 is physical GPU 1; physical GPU 0 is hidden
    assert metrics["gpu_0_utilization_percentage"] == 30.0
    assert metrics["gpu_0_memory_usage_megabytes"] == 3000.0
    assert metrics["gpu_0_memory_usage_percentage"] == 3.8
    assert metrics["gpu_0_power_usage_watts"] == 350.0
    assert metrics["gpu_0_power_usage_percentage"] == 50.0
    assert metrics["gpu_0_temperature_celsius"] == 42.0
    assert metrics["gpu_1_temperature_celsius"] == 41.0
    assert "gpu_1_power_usage_watts" not in metrics  # unsupported there
    assert not any(k.startswith("gpu_2_") for k in metrics)
    monitor.close()
    monitor.close()
    assert (nvml.inits, nvml.shutdowns) == (1, 1)


def test_gpu_monitor_stops_asking_for_a_reading_the_device_does_not_support():
    nvml = FakeNVML()
    monitor = GPUMonitor(visible_devices="1", nvml=nvml)
    for _ in range(3):
        monitor.collect()
    assert nvml.power_reads == 1


def test_gpu_monitor_without_driver_or_visible_gpu_raises_gpu_unavailable():
    with pytest.raises(GPUUnavailable, match="NVML failed to initialise"):
        GPUMonitor(nvml=FakeNVML(fail_init=True))
    nvml = FakeNVML()
    with pytest.raises(GPUUnavailable, match="no GPU visible .CUDA_VISIBLE_DEVICES='', 3 present"):
        GPUMonitor(visible_devices="", nvml=nvml)
    assert nvml.shutdowns == 1  # NVML released again


def test_gpu_monitor_on_this_machine_raises_gpu_unavailable_or_reports_real_gpus():
    try:
        monitor = GPUMonitor()
    except GPUUnavailable:
        return  # no nvidia-ml-py, no driver, or no GPU visible: the sampler logs it at debug level
    try:
        metrics = monitor.collect()
        assert "gpu_0_memory_usage_megabytes" in metrics
    finally:
        monitor.close()
