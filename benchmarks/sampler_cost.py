"""Sampler cost: CPU time of the system-stats thread at a 1 s interval.

Runs, side by side for the same wall time:

- ``ours``            mlflow-monitor's SystemSampler into a collecting sink (its thread only);
- ``ours+pipeline``   SystemSampler into the real metrics pipeline writing to sqlite
                      (sampler thread + the pipeline's flusher thread);
- ``mlflow`` (anchor) MLflow's own SystemMetricsMonitor logging to a sqlite run, as
                      ``mlflow.start_run(log_system_metrics=True)`` runs it;
- ``mlflow-collect``  MLflow's CPU/disk/network/GPU monitors only, no store calls
                      (the fairest like-for-like of the collection work).

CPU time is read per thread from its POSIX thread CPU clock (``pthread_getcpuclockid``),
over a window that starts after the first sample, so start-up is excluded. ``--children``
idle child processes stand in for DataLoader workers (ours also samples them).

Then what a user pays: the whole process's extra CPU (``time.process_time``: every thread;
plus the writer process that writes an embedded sqlite store, from ``/proc``;
user and system time, so the sampler, its points' materialisation, the flusher's sqlite
writes and whatever they cost the interpreter) with our sampler writing into a sqlite
run, against the same process idle. Windows alternate idle / sampling to share the
machine's noise; the target (< 0.5% of one core) is checked on this figure.

Usage: python benchmarks/sampler_cost.py [--seconds 30] [--interval 1.0] [--children 4]
"""

from __future__ import annotations

import argparse
import statistics
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time

import psutil

TARGET_PERCENT_OF_CORE = 0.5


def _thread_cpu_s(threads: list[threading.Thread]) -> float:
    return sum(time.clock_gettime(time.pthread_getcpuclockid(t.ident)) for t in threads)


class CountingSink:
    """Counts samples and remembers the last one; forwards to ``inner`` when given."""

    def __init__(self, inner=None) -> None:
        self.inner, self.count, self.last = inner, 0, {}

    def append_many(self, run_id, metrics, step, ts_ms=None):
        self.count += 1
        self.last = metrics
        if self.inner is not None:
            self.inner.append_many(run_id, metrics, step, ts_ms)


class MlflowCollectOnly:
    """MLflow's own monitor classes, collected and aggregated each interval, nothing logged."""

    def __init__(self, interval_s: float) -> None:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.interval_s, self.count, self.last = interval_s, 0, {}
        self._stop = threading.Event()
        self._holder = SystemMetricsMonitor.__new__(SystemMetricsMonitor)  # only for its monitors
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
        from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
        from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor

        self.monitors = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
        if gpu := SystemMetricsMonitor._initialize_gpu_monitor(self._holder):
            self.monitors.append(gpu)
        self.thread = threading.Thread(target=self._run, name="mlflow-collect-only", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            out = {}
            for m in self.monitors:
                m.collect_metrics()
                out.update(m.aggregate_metrics())
                m.clear_metrics()
            self.last, self.count = out, self.count + 1

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


def _machine_info() -> list[str]:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model
            )
    except OSError:
        pass
    import mlflow

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"machine: {platform.system()} {platform.release()} {platform.machine()}, {model}",
        f"cpus: {psutil.cpu_count()} logical, load average {load} (shared hosts inflate every row alike)",
        f"python {platform.python_version()}, psutil {psutil.__version__}, mlflow {mlflow.__version__}",
    ]


def _writer_cpu_s(pipeline) -> float:
    """CPU seconds the pipeline's writer processes (embedded sqlite) have used so far
    (Linux ``/proc``): the sampler's writes run there, so a user pays them too."""
    total = 0.0
    for dest in list(pipeline._destinations.values()):
        pid = getattr(getattr(dest.sender, "writer", None), "pid", None)
        if not pid:
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def _whole_process_extra(uri: str, client, exp: str, interval: float, seconds: float,
                         windows: int = 6) -> tuple[float, float, int]:
    """(idle % of a core, sampling % of a core, samples stored): alternating windows."""
    from mlflow_monitor.metrics import get_pipeline
    from mlflow_monitor.system.sampler import SystemSampler

    pipeline = get_pipeline()
    run_id = client.create_run(exp).info.run_id
    idle, busy = [], []
    each = seconds / windows
    sampler = None
    for w in range(windows * 2):
        sampling = w % 2 == 1
        if sampling:
            sampler = SystemSampler(run_id, interval_s=interval, sink=pipeline).start()
            time.sleep(interval * 1.5)  # past start-up and the first sample
        w0, c0 = time.monotonic(), time.process_time() + _writer_cpu_s(pipeline)
        time.sleep(each)
        if sampling:
            pipeline.flush(timeout=30)  # the window pays for writing its own samples
        cpu = time.process_time() + _writer_cpu_s(pipeline) - c0  # this process + its writer process
        (busy if sampling else idle).append(cpu / (time.monotonic() - w0) * 100)
        if sampler is not None:
            sampler.stop()
            pipeline.flush(timeout=30)
            sampler = None
    stored = len(client.get_metric_history(run_id, "system/cpu_utilization_percentage"))
    return statistics.median(idle), statistics.median(busy), stored


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0, help="measured window (default 30)")
    ap.add_argument("--interval", type=float, default=1.0, help="sampling interval in seconds (default 1)")
    ap.add_argument("--children", type=int, default=4, help="idle child processes, like DataLoader workers")
    args = ap.parse_args()
    if args.seconds <= 0 or args.interval <= 0 or args.children < 0:
        ap.error(
            f"--seconds and --interval must be > 0 and --children >= 0, got {args.seconds}, "
            f"{args.interval}, {args.children}"
        )

    import logging

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    tmp = tempfile.mkdtemp(prefix="sampler_cost_")
    os.environ["MLFLOW_MONITOR_HOME"] = os.path.join(tmp, "home")
    import mlflow
    from mlflow import MlflowClient
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    from mlflow_monitor.metrics import get_pipeline
    from mlflow_monitor.system.sampler import SystemSampler

    uri = f"sqlite:///{tmp}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("sampler_cost")
    ours_run = client.create_run(exp).info.run_id
    pipe_run = client.create_run(exp).info.run_id
    mlflow_run = client.create_run(exp).info.run_id

    children = [
        subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        for _ in range(args.children)
    ]
    try:
        ours_sink = CountingSink()
        pipeline = get_pipeline()
        pipe_sink = CountingSink(pipeline)
        ours = SystemSampler(ours_run, interval_s=args.interval, sink=ours_sink).start()
        ours_pipe = SystemSampler(pipe_run, interval_s=args.interval, sink=pipe_sink).start()
        theirs = SystemMetricsMonitor(mlflow_run, sampling_interval=args.interval, tracking_uri=uri)
        theirs.start()
        collect_only = MlflowCollectOnly(args.interval)
        collect_only.thread.start()

        time.sleep(args.interval * 1.5)  # past each one's first sample and start-up
        flusher = [t for t in threading.enumerate() if t.name == "mlflow-monitor-flusher"]
        rows = {
            "ours": ([ours._thread], lambda: ours_sink.count),
            "ours+pipeline": ([ours_pipe._thread, *flusher], lambda: pipe_sink.count),
            "mlflow (anchor)": ([theirs._process], lambda: theirs._logging_step),
            "mlflow-collect": ([collect_only.thread], lambda: collect_only.count),
        }
        start = {name: (_thread_cpu_s(ts), count()) for name, (ts, count) in rows.items()}
        t0 = time.monotonic()
        time.sleep(args.seconds)
        wall = time.monotonic() - t0
        end = {name: (_thread_cpu_s(ts), count()) for name, (ts, count) in rows.items()}

        ours.stop()
        ours_pipe.stop()
        theirs.finish()
        collect_only.stop()
        pipeline.flush(timeout=30)
        mlflow_keys = [k for k in client.get_run(mlflow_run).data.metrics if k.startswith("system/")]
        per_sample = {
            "ours": len(ours_sink.last),
            "ours+pipeline": len(pipe_sink.last),
            "mlflow (anchor)": len(mlflow_keys),
            "mlflow-collect": len(collect_only.last),
        }
    finally:
        for c in children:
            c.stdin.close()
            c.wait(10)

    print("\n".join(_machine_info()))
    print(f"window: {wall:.1f} s wall, interval {args.interval:g} s, {args.children} child processes\n")
    header = (
        f"| {'sampler':<16}| interval s | metrics/sample | samples | CPU ms/sample "
        "| % of one core | ratio vs MLflow |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    anchor_pct = (end["mlflow (anchor)"][0] - start["mlflow (anchor)"][0]) / wall * 100
    results = {}
    for name in rows:
        cpu = end[name][0] - start[name][0]
        samples = max(1, end[name][1] - start[name][1])
        pct = cpu / wall * 100
        results[name] = pct
        ratio = pct / anchor_pct if anchor_pct > 0 else float("nan")
        print(
            f"| {name:<16}| {args.interval:>10g} | {per_sample[name]:>14} | {samples:>7} | "
            f"{cpu * 1000 / samples:>13.2f} | {pct:>12.3f}% | {ratio:>14.2f}x |"
        )
    children = [
        subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
        for _ in range(args.children)
    ]
    try:
        idle_pct, busy_pct, stored = _whole_process_extra(uri, client, exp, args.interval, args.seconds)
    finally:
        for c in children:
            c.stdin.close()
            c.wait(10)
    extra = busy_pct - idle_pct
    print(f"\nwhole process, {args.seconds:g} s in alternating windows: idle {idle_pct:.3f}% of one core, "
          f"sampling into sqlite {busy_pct:.3f}% -> extra {extra:.3f}% ({stored} samples stored)")
    print(f"sampler thread alone (table above): {results['ours']:.3f}%")
    ok = extra < TARGET_PERCENT_OF_CORE
    print(
        f"\ntarget: whole-process extra CPU < {TARGET_PERCENT_OF_CORE}% of one core -> {'PASS' if ok else 'FAIL'} "
        f"({extra:.3f}%)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
