"""Hot-path cost per logged scalar: mlflow_monitor.log_metrics vs the anchors, in one run.

Anchors: TensorBoard ``SummaryWriter.add_scalar`` and ``mlflow.log_metric`` (sqlite).
Targets: log_metrics <= 1 us per point and >= 50x cheaper than add_scalar.

Each measurement is the median over ``--repeats`` timed blocks of ``--n`` calls, with the
background flusher / writer running as in real use.

Then the amortized cost per *stored* point: ``--amortized-steps`` steps of 4 points
(the autolog shape: a loss tensor, lr, step time, samples/s) are logged and flushed, and
the wall time and the whole process's CPU time (``time.process_time``: every thread,
user and system) from the first call until every point is in the store are divided by
the points; TensorBoard's ``add_scalar`` (until ``flush()`` returns) is timed the same
way. Target: <= 5 us amortized CPU per point on the embedded sqlite store. Usage:

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


def _amortized(steps: int, log_metrics, writer) -> dict[str, tuple[float, float, float]]:
    """{logger: (call us, amortized wall us, amortized CPU us) per point}."""
    import mlflow
    import torch

    import mlflow_monitor

    out = {}
    points = 4 * steps
    loss = torch.tensor(0.5)
    with mlflow.start_run():
        log_metrics({"train/loss": loss}, step=0)
        mlflow_monitor.flush(timeout=60)  # run id cached, keys validated
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(steps):
            log_metrics({"train/loss": loss, "train/lr": 0.01, "train/step_time_s": 2e-4,
                         "train/samples_per_s": 8e4}, step=i)
        w1 = time.perf_counter()
        assert mlflow_monitor.flush(timeout=600)
        w2, c2 = time.perf_counter(), time.process_time()
        out["mlflow_monitor.log_metrics -> sqlite"] = (
            (w1 - w0) / points * 1e6, (w2 - w0) / points * 1e6, (c2 - c0) / points * 1e6)
    n_tb = min(steps, 5000)
    w0, c0 = time.perf_counter(), time.process_time()
    for i in range(n_tb):
        for key, value in (("train/loss", loss), ("train/lr", 0.01), ("train/step_time_s", 2e-4),
                           ("train/samples_per_s", 8e4)):
            writer.add_scalar(key, value, i)
    w1 = time.perf_counter()
    writer.flush()
    w2, c2 = time.perf_counter(), time.process_time()
    out["SummaryWriter.add_scalar (anchor)"] = (
        (w1 - w0) / (4 * n_tb) * 1e6, (w2 - w0) / (4 * n_tb) * 1e6, (c2 - c0) / (4 * n_tb) * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="calls per timed block")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--mlflow-n", type=int, default=300, help="calls per block for mlflow.log_metric (slow)")
    ap.add_argument("--amortized-steps", type=int, default=25_000, help="steps of 4 points for the amortized cost")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="mm-bench-")
    os.chdir(work)
    os.environ["MLFLOW_MONITOR_HOME"] = os.path.join(work, "home")
    import mlflow
    from torch.utils.tensorboard import SummaryWriter

    import mlflow_monitor
    from mlflow_monitor.metrics import get_pipeline

    mlflow.set_tracking_uri(f"sqlite:///{work}/bench.db")
    results: dict[str, float] = {}
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
    amortized = _amortized(args.amortized_steps, log_metrics, writer)
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
    print(f"\namortized per stored point ({args.amortized_steps} steps x 4 points, from the first call "
          "until every point is stored; CPU = the whole process):")
    print(f"{'logger':48s} {'call us':>8s} {'wall us':>8s} {'CPU us':>8s}")
    for name, (call, wall, cpu) in amortized.items():
        print(f"{name:48s} {call:8.2f} {wall:8.2f} {cpu:8.2f}")
    ours_cpu = amortized["mlflow_monitor.log_metrics -> sqlite"][2]
    print(f"target <= 5 us amortized CPU per point: {'PASS' if ours_cpu <= 5 else 'FAIL'} ({ours_cpu:.1f} us)")
    sys.exit(0)


if __name__ == "__main__":
    main()
