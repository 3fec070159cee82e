"""Hot-path cost per logged scalar: mlflow_monitor.log_metrics vs the anchors, in one run.

Anchors: TensorBoard ``SummaryWriter.add_scalar`` and ``mlflow.log_metric`` (sqlite).
Targets: log_metrics <= 1 us per point and >= 50x cheaper than add_scalar.

Each measurement is the median over ``--repeats`` timed blocks of ``--n`` calls, with the
background flusher / writer running as in real use. Usage:

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="calls per timed block")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--mlflow-n", type=int, default=300, help="calls per block for mlflow.log_metric (slow)")
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
        writer.close()
        t0 = time.perf_counter()
        ok = mlflow_monitor.flush(timeout=300)
        drain_s = time.perf_counter() - t0

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
    sys.exit(0)


if __name__ == "__main__":
    main()
