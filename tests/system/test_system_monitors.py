"""The per-source monitors against the real machine: process tree, rates, CPU."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest
from mlflow_monitor.system.cpu_monitor import CPUMonitor
from mlflow_monitor.system.disk_monitor import DiskMonitor
from mlflow_monitor.system.network_monitor import NetworkMonitor
from mlflow_monitor.system.process_monitor import ProcessMonitor
from mlflow_monitor.system.rates import CounterRates

# A child that holds ~60 MB and, with an argument, starts one grandchild doing the same.
_HOLDER = """
import subprocess, sys
block = bytearray(60_000_000)
for i in range(0, len(block), 4096):
    block[i] = 1  # touch every page so it is resident
kid = None
if len(sys.argv) > 1:
    kid = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=subprocess.PIPE)
    kid.stdout.readline()
print("ready", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder():
    procs = []

    def _start(*args):
        p = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        procs.append(p)
        assert p.stdout.readline().strip() == b"ready"
        return p

    yield _start
    for p in procs:
        p.stdin.close()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def test_child_process_rss_is_included_in_process_rss(holder):
    monitor = ProcessMonitor()
    # relative to what this test process already has: an earlier test's multiprocessing
    # (spawn) leaves Python's resource tracker running as a child for the whole session
    alone = monitor.collect()
    base_n, base_rss = alone["process_children"], alone["process_children_rss_megabytes"]

    child = holder()
    with_child = monitor.collect()
    own_rss = psutil.Process().memory_info().rss / 1e6
    assert with_child["process_children"] == base_n + 1
    assert with_child["process_children_rss_megabytes"] >= base_rss + 55
    assert with_child["process_rss_megabytes"] >= own_rss * 0.9 + 55

    child.stdin.close()
    child.wait(10)
    assert monitor.collect()["process_children"] == base_n


def test_grandchildren_count_as_children(holder):
    monitor = ProcessMonitor()
    before = monitor.collect()
    holder(_HOLDER)
    metrics = monitor.collect()
    assert metrics["process_children"] == before["process_children"] + 2
    assert metrics["process_children_rss_megabytes"] >= before["process_children_rss_megabytes"] + 110


def test_process_cpu_includes_work_done_since_last_sample():
    monitor = ProcessMonitor()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # 0.3 s of CPU, however busy the host is
        pass
    assert monitor.collect()["process_cpu_utilization_percentage"] > 5


def test_system_cpu_reading_is_not_disturbed_by_other_psutil_cpu_percent_callers():
    monitor = CPUMonitor()
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    psutil.cpu_percent()  # what MLflow's or Lightning's monitor does; resets psutil's shared state
    assert monitor.collect()["cpu_utilization_percentage"] > 0


def test_counter_rates_are_megabytes_per_second_from_deltas():
    rates = CounterRates({"read": 1_000_000.0, "write": 0.0}, now=10.0)
    assert rates.update({"read": 6_000_000.0, "write": 2_000_000.0}, now=12.0) == {"read": 2.5, "write": 1.0}
    assert rates.update({"read": 6_000_000.0, "write": 3_000_000.0}, now=13.0) == {"read": 0.0, "write": 1.0}


def test_counter_rates_never_go_negative_when_a_counter_resets():
    rates = CounterRates({"rx": 9_000_000.0}, now=0.0)
    assert rates.update({"rx": 1_000_000.0}, now=1.0) == {"rx": 0.0}
    assert rates.update({"rx": 3_000_000.0}, now=2.0) == {"rx": 2.0}  # measured from the new base
    assert rates.update({"rx": 4_000_000.0}, now=2.0) == {"rx": 0.0}  # no time passed


def _send_over_loopback(n_bytes: int) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    received = []

    def _receive():
        conn, _ = server.accept()
        with conn:
            total = 0
            while total < n_bytes:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
            received.append(total)

    reader = threading.Thread(target=_receive)
    reader.start()
    with socket.create_connection(server.getsockname(), timeout=10) as client:
        client.sendall(b"x" * n_bytes)
    reader.join(10)
    server.close()
    assert received == [n_bytes]


def test_network_monitor_counts_loopback_traffic_since_start_and_as_a_rate():
    monitor = NetworkMonitor()
    _send_over_loopback(20_000_000)
    metrics = monitor.collect()
    assert metrics["network_receive_megabytes"] >= 20
    assert metrics["network_transmit_megabytes"] >= 20
    assert metrics["network_receive_megabytes_per_second"] > 0
    assert metrics["network_transmit_megabytes_per_second"] > 0
    later = monitor.collect()
    assert later["network_receive_megabytes"] >= metrics["network_receive_megabytes"]
    assert later["network_receive_megabytes_per_second"] >= 0


def test_disk_monitor_reports_usage_of_root_and_non_negative_io_rates():
    monitor = DiskMonitor()
    metrics = monitor.collect()
    usage = psutil.disk_usage("/")
    assert metrics["disk_usage_percentage"] == usage.percent
    assert metrics["disk_available_megabytes"] > 0
    assert metrics["disk_usage_megabytes"] > 0
    if psutil.disk_io_counters() is not None:
        assert metrics["disk_read_megabytes_per_second"] >= 0
        assert metrics["disk_write_megabytes_per_second"] >= 0
