"""Training overhead of mlflow_monitor.autolog() on a CPU MLP loop (1-3 ms per step).

Arms, interleaved block by block in one process to share the machine's noise:
  off       -- autolog disabled (the anchor)
  autolog   -- mlflow_monitor.autolog(), one run per block, flushed afterwards
and, once, for context: ``mlflow.log_metric`` of the loss every step (what a
hand-written per-step logger costs), on the same temp sqlite store.

Target: autolog at most 3% slower than off, and every step's loss in the run.

    python benchmarks/training_overhead.py [--blocks 10] [--steps-per-block 300]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time


def _machine() -> str:
    import mlflow
    import torch

    return (f"{platform.node()} | {platform.platform()} | python {platform.python_version()} | "
            f"cpus {os.cpu_count()} | torch {torch.__version__} (threads {torch.get_num_threads()}) | "
            f"mlflow {mlflow.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--steps-per-block", type=int, default=300)
    parser.add_argument("--log-metric-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup-steps", type=int, default=20,
                        help="first steps of each block timed separately (run start, sampler start)")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="mm_overhead_")
    os.environ.setdefault("MLFLOW_MONITOR_HOME", os.path.join(tmp, "home"))
    import mlflow
    import torch

    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    torch.set_num_threads(args.threads)  # one training thread: less noise from a shared machine
    import mlflow_monitor
    from mlflow_monitor.metrics import get_pipeline

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = args.steps_per_block * 64
    data = torch.utils.data.TensorDataset(torch.randn(n, 128), torch.randint(0, 10, (n,)))
    loader = torch.utils.data.DataLoader(data, batch_size=64)

    warm = args.warmup_steps

    def block(log_metric: bool = False, steps: int = args.steps_per_block) -> tuple[float, float]:
        """(steady ms/step after the first ``warm`` steps, ms spent in those first steps)."""
        t0 = time.perf_counter()
        t_warm = t0
        for i, (x, y) in enumerate(loader):
            if i == steps:
                break
            if i == warm:
                t_warm = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if log_metric:
                mlflow.log_metric("loss", loss.item(), step=i)
        end = time.perf_counter()
        return (end - t_warm) / (steps - warm) * 1000, (t_warm - t0) * 1000

    block()  # warm-up (imports, allocator)
    off, on, runs, setup_off, setup_on = [], [], [], [], []
    for b in range(args.blocks):
        order = ("off", "on") if b % 2 == 0 else ("on", "off")
        for arm in order:
            if arm == "off":
                ms, first = block()
                off.append(ms)
                setup_off.append(first)
            else:
                mlflow_monitor.autolog(system_metrics=True, notify=False, health=False, silent=True, sklearn=False)
                with mlflow.start_run() as run:
                    ms, first = block()
                    on.append(ms)
                    setup_on.append(first)
                runs.append(run.info.run_id)
                mlflow_monitor.autolog(disable=True, silent=True)
    get_pipeline().flush(60)
    client = mlflow.MlflowClient()
    present = sum(len(client.get_metric_history(r, "train/loss")) for r in runs)
    with mlflow.start_run():
        log_metric_ms = block(log_metric=True, steps=args.log_metric_steps)[0]

    steps = args.blocks * args.steps_per_block
    m_off, m_on = statistics.median(off), statistics.median(on)
    print(f"machine: {_machine()}")
    print(f"model: MLP 128-256-256-10, batch 64, SGD; {args.blocks} interleaved blocks of "
          f"{args.steps_per_block} steps per arm, each autolog block its own run; medians of the "
          f"per-block steady ms/step (after the first {warm} steps of each block)\n")
    print("| arm | steps | ms/step | vs off | loss points present after flush |")
    print("|---|---:|---:|---:|---:|")
    print(f"| off (anchor) | {steps} | {m_off:.3f} | 1.000 | - |")
    print(f"| mlflow_monitor.autolog() | {steps} | {m_on:.3f} | {m_on / m_off:.3f} "
          f"({(m_on / m_off - 1) * 100:+.1f}%) | {present} / {steps} |")
    print(f"| mlflow.log_metric per step | {args.log_metric_steps} | {log_metric_ms:.3f} | "
          f"{log_metric_ms / m_off:.3f} | - |")
    extra_setup = statistics.median(setup_on) - statistics.median(setup_off)
    print(f"\none-off cost per monitored run (first {warm} steps: run resolution, sampler start): "
          f"{extra_setup:+.1f} ms")
    ok = present == steps and m_on <= m_off * 1.03
    print(f"\ntarget (<= 3% slower, every loss present): {'MET' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
