"""SystemSampler: one append_many per sample, prefixes, peaks, failure isolation, stop()."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from mlflow_monitor.system.base_monitor import BaseMonitor
from mlflow_monitor.system.cpu_monitor import CPUMonitor
from mlflow_monitor.system.sampler import SystemSampler

MLFLOW_CPU_MEMORY = {
    "cpu_utilization_percentage",
    "system_memory_usage_megabytes",
    "system_memory_usage_percentage",
}
MLFLOW_DISK_NETWORK = {
    "disk_usage_megabytes",
    "disk_usage_percentage",
    "disk_available_megabytes",
    "network_receive_megabytes",
    "network_transmit_megabytes",
}
OURS = {
    "process_rss_megabytes",
    "process_children_rss_megabytes",
    "process_cpu_utilization_percentage",
    "process_children",
    "network_receive_megabytes_per_second",
    "network_transmit_megabytes_per_second",
}


class CollectingSink:
    """Stands where the metrics pipeline goes: records every append_many call."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[str, dict, int, int]] = []
        self._fail_first = fail_first
        self.attempts = 0

    def append_many(self, run_id, metrics, step, ts_ms=None):
        self.attempts += 1
        if self.attempts <= self._fail_first:
            raise ConnectionError("store down")
        self.calls.append((run_id, dict(metrics), step, ts_ms))


class ScriptedMonitor(BaseMonitor):
    """Returns the next value of a script for ``metric`` on each collect."""

    name = "scripted"

    def __init__(self, metric: str, values: list[float]) -> None:
        self.metric, self.values, self.closed = metric, list(values), False

    def collect(self):
        return {self.metric: self.values.pop(0) if len(self.values) > 1 else self.values[0]}

    def close(self):
        self.closed = True


class RaisingMonitor(BaseMonitor):
    name = "raising"

    def __init__(self) -> None:
        self.calls = 0

    def collect(self):
        self.calls += 1
        raise OSError("sensor unplugged")


def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within timeout")
        time.sleep(0.01)


def test_sample_has_mlflow_names_and_process_metrics_under_system_prefix():
    sink = CollectingSink()
    sampler = SystemSampler("run1", interval_s=0.05, sink=sink, gpu=False).start()
    _wait_for(lambda: len(sink.calls) >= 2)
    sampler.stop()

    run_id, metrics, step, ts_ms = sink.calls[-1]
    names = {k.removeprefix("system/") for k in metrics}
    assert run_id == "run1"
    assert all(k.startswith("system/") for k in metrics)
    assert MLFLOW_CPU_MEMORY | MLFLOW_DISK_NETWORK | OURS <= names
    assert not any(n.startswith("gpu_") for n in names)
    assert metrics["system/process_rss_megabytes"] > 10  # a Python with mlflow loaded
    assert 0 <= metrics["system/cpu_utilization_percentage"] <= 100
    assert abs(ts_ms - time.time() * 1000) < 60_000


def test_every_sample_is_one_append_many_with_step_equal_to_sample_index():
    sink = CollectingSink()
    sampler = SystemSampler("r", interval_s=0.02, sink=sink, monitors=[ScriptedMonitor("m", [1.0])]).start()
    _wait_for(lambda: len(sink.calls) >= 5)
    sampler.stop()
    assert [c[2] for c in sink.calls] == list(range(len(sink.calls)))
    assert all(c[1] == {"system/m": 1.0} for c in sink.calls)


def test_node_id_puts_metrics_under_system_node_prefix():
    for kwargs in ({"node_id": "node1"}, {"prefix": "system/node1/"}):
        sink = CollectingSink()
        sampler = SystemSampler(
            "r", interval_s=60, sink=sink, monitors=[ScriptedMonitor("m", [2.0])], **kwargs
        )
        sampler.start()
        sampler.stop()
        assert sink.calls[0][1] == {"system/node1/m": 2.0}, kwargs


def test_peaks_track_the_maximum_of_each_metric():
    sink = CollectingSink()
    values = [3.0, 9.0, 4.0, 1.0]
    sampler = SystemSampler(
        "r", interval_s=0.02, sink=sink, monitors=[ScriptedMonitor("gpu_0_memory_usage_megabytes", values)]
    )
    sampler.start()
    _wait_for(lambda: len(sink.calls) >= 4)
    sampler.stop()
    assert sampler.peaks == {"gpu_0_memory_usage_megabytes": 9.0}


def test_raising_monitor_is_disabled_once_and_others_keep_sampling(caplog):
    raising = RaisingMonitor()
    sink = CollectingSink()
    sampler = SystemSampler("r", interval_s=0.02, sink=sink, monitors=[raising, CPUMonitor()])
    with caplog.at_level(logging.WARNING, logger="mlflow_monitor"):
        sampler.start()
        _wait_for(lambda: len(sink.calls) >= 3)
        sampler.stop()
    assert raising.calls == 1
    assert all("system/cpu_utilization_percentage" in c[1] for c in sink.calls)
    warnings = [r for r in caplog.records if "raising" in r.getMessage()]
    assert len(warnings) == 1 and "sensor unplugged" in warnings[0].getMessage()


def test_failing_sink_does_not_stop_sampling():
    sink = CollectingSink(fail_first=2)
    sampler = SystemSampler("r", interval_s=0.02, sink=sink, monitors=[ScriptedMonitor("m", [1.0])]).start()
    _wait_for(lambda: len(sink.calls) >= 2)
    sampler.stop()
    assert sink.attempts >= 4
    assert sink.calls[0][2] == 2  # steps stay sample indices; the two failed samples are gaps


def test_stop_takes_one_final_sample_closes_monitors_and_is_idempotent():
    sink = CollectingSink()
    monitor = ScriptedMonitor("m", [5.0])
    sampler = SystemSampler("r", interval_s=3600, sink=sink, monitors=[monitor]).start()
    sampler.stop()
    sampler.stop()
    assert [c[2] for c in sink.calls] == [0]
    assert monitor.closed
    assert not any(
        t.name.startswith("mlflow-monitor-system-") and t.is_alive() for t in threading.enumerate()
    )


def test_stop_returns_within_its_timeout_when_a_monitor_hangs(caplog):
    release = threading.Event()

    class HangingMonitor(BaseMonitor):
        name = "hanging"

        def collect(self):
            release.wait(30)
            return {}

    sampler = SystemSampler(
        "r", interval_s=3600, sink=CollectingSink(), monitors=[HangingMonitor()], stop_timeout_s=0.2
    )
    sampler.start()
    try:
        with caplog.at_level(logging.WARNING, logger="mlflow_monitor"):
            sampler.stop()
        assert any("did not stop" in r.getMessage() for r in caplog.records)
    finally:
        release.set()


def test_start_after_stop_is_refused_with_clear_error():
    sampler = SystemSampler("run9", sink=CollectingSink(), monitors=[])
    sampler.stop()
    with pytest.raises(RuntimeError, match="run9 was stopped"):
        sampler.start()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"interval_s": 0}, "interval_s must be a positive number of seconds, got 0"),
        ({"interval_s": -1.0}, "got -1.0"),
        ({"interval_s": float("nan")}, "got nan"),
        ({"interval_s": "1"}, "got '1'"),
        ({"run_id": ""}, "run_id must be a non-empty string, got ''"),
        ({"sink": object()}, "sink must have an append_many.*got object"),
        ({"node_id": "a/b"}, "node_id must be a non-empty string without '/', got 'a/b'"),
        ({"stop_timeout_s": 0}, "stop_timeout_s must be a positive number, got 0"),
        ({"monitors": ["cpu"]}, "monitors must be BaseMonitor instances, got str"),
    ],
)
def test_bad_arguments_raise_naming_the_argument_and_value(kwargs, message):
    args = {"run_id": "r", "sink": CollectingSink(), **kwargs}
    with pytest.raises(ValueError, match=message):
        SystemSampler(**args)
    assert not any(t.name.startswith("mlflow-monitor-system-") for t in threading.enumerate())


def test_no_visible_gpu_gives_no_gpu_metrics_and_no_warning(monkeypatch, caplog):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # hides GPUs on GPU machines too
    sink = CollectingSink()
    with caplog.at_level(logging.DEBUG, logger="mlflow_monitor"):
        sampler = SystemSampler("r", interval_s=3600, sink=sink, gpu=True).start()
        sampler.stop()
    assert sink.calls and not any("gpu_" in k for k in sink.calls[0][1])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("no GPU metrics" in r.getMessage() for r in caplog.records)
