"""Hot-path cost per logged scalar: mlflow_monitor.log_metrics vs the anchors, in one run.

Anchors: TensorBoard ``SummaryWriter.add_scalar`` and ``mlflow.log_metric`` (sqlite).
Targets: log_metrics <= 1 us per point and >= 50x cheaper than add_scalar.

Each measurement is the median over ``--repeats`` timed blocks of ``--n`` calls, with the
background flusher / writer running as in real use.

Then the amortized cost per *stored* point: ``--amortized-steps`` steps of 4 points
(the autolog shape: a loss tensor, lr, step time, samples/s) are logged and flushed, and
the wall time and the whole process's CPU time (``time.process_time``: every thread,
user and system) from the first call until every point is in the store are divided by
the points, and split into the call (the caller's thread), the SQL write (timed inside
the writer) and the rest of the pipeline; TensorBoard's ``add_scalar`` (until
``flush()`` returns) is timed the same way, and sqlite's own insert of the same rows
(raw ``sqlite3``, MLflow's table and indexes) is the floor. Two arms for ours, in the
same rounds: the writer process (the default: the SQL write runs in a child process,
whose CPU is read from ``/proc`` and reported apart) and the in-process writer
(``MLFLOW_MONITOR_WRITER_PROCESS=0``). Target: <= 5 us amortized CPU per point that the
training process pays, on the embedded sqlite store; the machine's total (training
process + writer process) is printed next to it. Usage:

    .venv/bin/python benchmarks/hot_path.py [--n 20000] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time


def _median_ns_per_point(fn, n: int, repeats: int, points_per_call: int) -> float:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn(n)
        samples.append((time.perf_counter_ns() - t0) / (n * points_per_call))
    return statistics.median(samples)


class _WriteClock:
    """Wall and CPU time spent inside the SQL writer (the flusher thread's store write)."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def install(self) -> None:
        from mlflow_monitor.metrics.sql_writer import SqlMetricWriter

        original, clock = SqlMetricWriter._write_rows, self

        def timed(writer, run_id, points):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return original(writer, run_id, points)
            finally:
                clock.wall += time.perf_counter() - w0
                clock.cpu += time.thread_time() - c0

        SqlMetricWriter._write_rows = timed


def _child_cpu_s(pid) -> float:
    """CPU seconds (user + system) the writer process ``pid`` has used so far (Linux ``/proc``)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _store_writer():
    from mlflow_monitor.metrics import get_pipeline
    from mlflow_monitor.metrics.writer_process import SqlWriterProcess

    for dest in list(get_pipeline()._destinations.values()):
        if isinstance(dest.sender.writer, SqlWriterProcess):
            return dest.sender.writer
    return None


def _use_writer_process(on: bool):
    """Switch the store's live writer between its writer process and the in-process writer
    (a benchmark instrument: both arms then share one warm pipeline, child and connection)."""
    writer = _store_writer()
    if writer is None:
        raise RuntimeError("no writer process for the embedded store (MLFLOW_MONITOR_WRITER_PROCESS=0?)")
    writer._fallback = None if on else writer._in_process_writer
    return writer


def _sqlite_floor(db: str, run_id: str, steps: int, first_step: int) -> float:
    """CPU us per row of sqlite itself inserting the same rows into MLflow's ``metrics``
    table (raw ``sqlite3``, one transaction, the writer's multi-row statements): the floor
    under any writer that keeps MLflow's schema and its three indexes."""
    import sqlite3

    con = sqlite3.connect(db, isolation_level=None)
    keys = ("train/loss", "train/lr", "train/step_time_s", "train/samples_per_s")
    base = int(time.time() * 1000)
    sql = ("INSERT OR IGNORE INTO metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES "
           + ", ".join(f"(?2, ?{3 + 4 * r}, ?{4 + 4 * r}, ?{5 + 4 * r}, ?{6 + 4 * r}, ?1)" for r in range(100)))
    flats = {k: [v for i in range(steps) for v in (0.5, base + i // 5, first_step + i, False)] for k in keys}
    c0 = time.process_time()
    con.execute("BEGIN IMMEDIATE")
    for key, flat in flats.items():
        for i in range(0, len(flat) - 399, 400):
            con.execute(sql, [run_id, key, *flat[i : i + 400]])
    con.execute("COMMIT")
    cpu = time.process_time() - c0
    con.close()
    return cpu / (4 * (steps // 100 * 100)) * 1e6


ROWS = ("call wall", "call CPU", "pipeline CPU", "write CPU (this process)", "training process CPU",
        "writer process CPU", "machine CPU", "total wall")


def _amortized(steps: int, log_metrics, writer, db: str) -> dict[str, tuple[float, ...]]:
    """{logger: (call wall, call CPU, pipeline CPU, write CPU in this process, training-process
    CPU, writer-process CPU, machine CPU, total wall) in us per point}.

    ``call``: the logging loop on the caller's thread (its thread CPU); ``write``: inside
    the SQL writer when it runs in this process; ``pipeline``: the rest of this process's
    CPU until every point is stored (the flusher's materialising, grouping, hand-over to the
    writer process, the interpreter's GC, ...); ``writer process``: the child's CPU.
    """
    import mlflow
    import torch

    import mlflow_monitor

    out = {}
    points = 4 * steps
    loss = torch.tensor(0.5)
    clock = _WriteClock()
    clock.install()
    for arm, on in (("writer process", True), ("in-process writer", False)):
        with mlflow.start_run() as run:
            log_metrics({"train/loss": loss}, step=0)
            mlflow_monitor.flush(timeout=60)  # run id cached, keys validated, the writer process up
            child = _use_writer_process(on)
            pid = child.pid if on else None
            clock.wall = clock.cpu = 0.0
            w0, c0, t0, k0 = time.perf_counter(), time.process_time(), time.thread_time(), _child_cpu_s(pid)
            for i in range(steps):
                log_metrics({"train/loss": loss, "train/lr": 0.01, "train/step_time_s": 2e-4,
                             "train/samples_per_s": 8e4}, step=i)
            w1, t1 = time.perf_counter(), time.thread_time()
            assert mlflow_monitor.flush(timeout=600)
            w2, c2, k2 = time.perf_counter(), time.process_time(), _child_cpu_s(pid)
            call_cpu, total_cpu, child_cpu = t1 - t0, c2 - c0, k2 - k0
            out[f"mlflow_monitor.log_metrics -> sqlite, {arm}"] = tuple(x / points * 1e6 for x in (
                w1 - w0, call_cpu, total_cpu - call_cpu - clock.cpu, clock.cpu, total_cpu, child_cpu,
                total_cpu + child_cpu, w2 - w0))
            if not on:
                floor = _sqlite_floor(db, run.info.run_id, steps, first_step=10**7)  # this run's own: new rows
    _use_writer_process(True)
    n_tb = min(steps, 5000)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_tb):
        for key, value in (("train/loss", loss), ("train/lr", 0.01), ("train/step_time_s", 2e-4),
                           ("train/samples_per_s", 8e4)):
            writer.add_scalar(key, value, i)
    w1, c1 = time.perf_counter(), time.process_time()
    writer.flush()
    w2, c2 = time.perf_counter(), time.process_time()
    n = 4 * n_tb
    out["SummaryWriter.add_scalar (anchor)"] = tuple(x / n * 1e6 for x in (
        w1 - w0, c1 - c0, 0.0, c2 - c1, c2 - c0, 0.0, c2 - c0, w2 - w0))
    out["sqlite's own insert of the same rows (floor)"] = (0.0, 0.0, 0.0, floor, floor, 0.0, floor, 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="calls per timed block")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--mlflow-n", type=int, default=300, help="calls per block for mlflow.log_metric (slow)")
    ap.add_argument("--amortized-steps", type=int, default=25_000, help="steps of 4 points for the amortized cost")
    ap.add_argument("--amortized-repeats", type=int, default=3, help="interleaved rounds (medians reported)")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="mm-bench-")
    os.chdir(work)
    os.environ["MLFLOW_MONITOR_HOME"] = os.path.join(work, "home")
    os.environ["MLFLOW_MONITOR_WRITER_PROCESS"] = "1"
    import mlflow
    from torch.utils.tensorboard import SummaryWriter

    import mlflow_monitor
    from mlflow_monitor.metrics import get_pipeline

    mlflow.set_tracking_uri(f"sqlite:///{work}/bench.db")
    results: dict[str, float] = {}
    loads = [os.getloadavg()[0]]
    with mlflow.start_run():
        get_pipeline()
        log_metrics = mlflow_monitor.log_metrics
        keys10 = [f"k{i}" for i in range(10)]

        def ours_1(n: int) -> None:
            for i in range(n):
                log_metrics({"train/loss": 0.5}, step=i)

        def ours_10(n: int) -> None:
            for i in range(n):
                log_metrics(dict.fromkeys(keys10, 0.5), step=i)

        writer = SummaryWriter(log_dir=os.path.join(work, "tb"), max_queue=10, flush_secs=1)

        def tb(n: int) -> None:
            for i in range(n):
                writer.add_scalar("train/loss", 0.5, i)

        def mlf(n: int) -> None:
            for i in range(n):
                mlflow.log_metric("train/loss_mlflow", 0.5, step=i)

        ours_1(1000)  # warm-up: key validation cache, run-id cache
        results["mlflow_monitor.log_metrics (1 scalar/call)"] = _median_ns_per_point(ours_1, args.n, args.repeats, 1)
        results["mlflow_monitor.log_metrics (10 scalars/call)"] = _median_ns_per_point(ours_10, args.n // 10, args.repeats, 10)
        results["SummaryWriter.add_scalar (anchor)"] = _median_ns_per_point(tb, args.n // 4, args.repeats, 1)
        results["mlflow.log_metric, sqlite (anchor)"] = _median_ns_per_point(mlf, args.mlflow_n, 3, 1)
        t0 = time.perf_counter()
        ok = mlflow_monitor.flush(timeout=300)
        drain_s = time.perf_counter() - t0
    rounds = [_amortized(args.amortized_steps, log_metrics, writer, f"{work}/bench.db")
              for _ in range(args.amortized_repeats)]  # ours, then the anchors, per round: interleaved
    amortized = {name: tuple(statistics.median(r[name][i] for r in rounds) for i in range(len(ROWS)))
                 for name in rounds[0]}
    loads.append(os.getloadavg()[0])
    writer.close()

    tb_ns = results["SummaryWriter.add_scalar (anchor)"]
    ml_ns = results["mlflow.log_metric, sqlite (anchor)"]
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, python {platform.python_version()}, "
          f"mlflow {mlflow.__version__}, load avg {os.getloadavg()[0]:.2f}")
    print(f"{'call':48s} {'ns/point':>10s} {'vs add_scalar':>14s} {'vs log_metric':>14s}")
    for name, ns in results.items():
        print(f"{name:48s} {ns:10.0f} {tb_ns / ns:13.1f}x {ml_ns / ns:13.1f}x")
    ours = results["mlflow_monitor.log_metrics (1 scalar/call)"]
    print(f"\ntarget <= 1000 ns/point: {'PASS' if ours <= 1000 else 'FAIL'} ({ours:.0f} ns, 1 scalar/call); "
          f">= 50x cheaper than add_scalar: {'PASS' if tb_ns / ours >= 50 else 'FAIL'} ({tb_ns / ours:.0f}x)")
    print(f"all points delivered afterwards: {ok} (flush took {drain_s:.1f} s)")
    print(f"\namortized per stored point (median of {args.amortized_repeats} interleaved rounds of "
          f"{args.amortized_steps} steps x 4 points, from the first call until every point is stored), "
          "us per point. 'training process CPU' is what the training process pays (every thread); "
          "'writer process CPU' is the child's; 'machine CPU' is both. Paste-ready:\n")
    print(f"load avg (1 min) at start / after: {loads[0]:.2f} / {loads[-1]:.2f}; uptime: {_uptime()}\n")
    print("| logger | " + " | ".join(ROWS) + " |")
    print("|---|" + "---:|" * len(ROWS))
    for name, row in amortized.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" if v else "" for v in row) + " |")
    ours = amortized["mlflow_monitor.log_metrics -> sqlite, writer process"]
    print(f"\ntarget <= 5 us amortized CPU per point paid by the training process: "
          f"{'PASS' if ours[4] <= 5 else 'FAIL'} ({ours[4]:.1f} us; the machine pays {ours[6]:.1f} us with "
          f"the writer process, {amortized['mlflow_monitor.log_metrics -> sqlite, in-process writer'][6]:.1f} us "
          "with the in-process writer)")
    sys.exit(0)


def _uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:
        return f"load avg {os.getloadavg()}"


if __name__ == "__main__":
    main()
