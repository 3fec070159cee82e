"""Training overhead of mlflow_monitor.autolog() on CPU loops: 1-3 ms steps and 0.2 ms steps.

Two loop shapes, each with the two arms interleaved block by block in one process to
share the machine's noise:

  mlp   -- MLP 128-256-256-10, batch 64, a collating DataLoader (1-3 ms per step)
  tiny  -- one Linear 8-4, batch 8, a DataLoader over ready batches (``batch_size=None``,
           no collation): about 0.2 ms per step on an idle core, where a per-point cost
           shows. The step time measured is printed; on a loaded machine it is longer.

  off       -- autolog disabled (the anchor)
  autolog   -- mlflow_monitor.autolog(), one run per block, flushed afterwards

Every autolog step logs 4 points (train/loss, train/lr, train/step_time_s,
train/samples_per_s) into the embedded sqlite store; each block's points are checked
in the store afterwards. Once, for context: ``mlflow.log_metric`` of the loss every step.

Targets: autolog at most 3% slower than off at 1-3 ms steps, at most 10% at 0.2 ms
steps, and every point of every step in the run.

    python benchmarks/training_overhead.py [--blocks 10] [--steps-per-block 300] [--shapes mlp,tiny]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

POINTS = ("train/loss", "train/lr", "train/step_time_s", "train/samples_per_s")
SHAPES = {  # name: (layer sizes, batch size, target overhead, DataLoader over ready batches)
    "mlp": ((128, 256, 256, 10), 64, 0.03, False),
    "tiny": ((8, 4), 8, 0.10, True),
}


def _machine() -> str:
    import mlflow
    import torch

    return (f"{platform.node()} | {platform.platform()} | python {platform.python_version()} | "
            f"cpus {os.cpu_count()} | torch {torch.__version__} (threads {torch.get_num_threads()}) | "
            f"mlflow {mlflow.__version__} | load avg {os.getloadavg()[0]:.2f}")


def _loop(sizes: tuple[int, ...], batch: int, steps: int, ready_batches: bool):
    import torch

    torch.manual_seed(0)
    layers: list = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    n = steps * batch
    x, y = torch.randn(n, sizes[0]), torch.randint(0, sizes[-1], (n,))
    if ready_batches:  # no per-step collation: the loader costs ~20 us, not ~100 us
        loader = torch.utils.data.DataLoader(list(zip(x.split(batch), y.split(batch))), batch_size=None)
    else:
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    return model, opt, loader


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--steps-per-block", type=int, default=300, help="for the mlp shape; tiny runs 10x more")
    parser.add_argument("--log-metric-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shapes", default="mlp,tiny")
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

    warm = args.warmup_steps
    print(f"machine: {_machine()}")
    print(f"{args.blocks} interleaved blocks per arm, each autolog block its own run (system metrics on, "
          f"health off); medians of the per-block steady us/step after the first {warm} steps\n")
    print("| loop | arm | steps | us/step | vs off | points present after flush |")
    print("|---|---|---:|---:|---:|---:|")
    met = True
    for shape in args.shapes.split(","):
        sizes, batch, target, ready_batches = SHAPES[shape]
        steps_per_block = args.steps_per_block * (10 if shape == "tiny" else 1)
        model, opt, loader = _loop(sizes, batch, steps_per_block, ready_batches)

        def block(log_metric: bool = False, steps: int = steps_per_block) -> tuple[float, float]:
            """(steady us/step after the first ``warm`` steps, ms spent in those first steps)."""
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
            return (end - t_warm) / (steps - warm) * 1e6, (t_warm - t0) * 1000

        block()  # warm-up (imports, allocator)
        off, on, runs = [], [], []
        for b in range(args.blocks):
            for arm in (("off", "on") if b % 2 == 0 else ("on", "off")):
                if arm == "off":
                    off.append(block()[0])
                else:
                    mlflow_monitor.autolog(system_metrics=True, notify=False, health=False, silent=True,
                                           sklearn=False)
                    with mlflow.start_run() as run:
                        on.append(block()[0])
                    runs.append(run.info.run_id)
                    mlflow_monitor.autolog(disable=True, silent=True)
        get_pipeline().flush(120)
        client = mlflow.MlflowClient()
        present = sum(len(client.get_metric_history(r, k)) for r in runs for k in POINTS)
        # step_time_s and samples_per_s start at the second step of a run
        expected = len(runs) * (4 * steps_per_block - 2)
        steps = args.blocks * steps_per_block
        m_off, m_on = statistics.median(off), statistics.median(on)
        print(f"| {shape} | off (anchor) | {steps} | {m_off:.1f} | 1.000 | - |")
        print(f"| {shape} | mlflow_monitor.autolog() | {steps} | {m_on:.1f} | {m_on / m_off:.3f} "
              f"({(m_on / m_off - 1) * 100:+.1f}%) | {present} / {expected} |")
        if shape == "mlp":
            with mlflow.start_run():
                lm = block(log_metric=True, steps=args.log_metric_steps)[0]
            print(f"| {shape} | mlflow.log_metric per step | {args.log_metric_steps} | {lm:.1f} | "
                  f"{lm / m_off:.3f} | - |")
        ok = present == expected and m_on <= m_off * (1 + target)
        met = met and ok
        print(f"| {shape} | target <= {target * 100:.0f}% slower, every point present | | | "
              f"{'MET' if ok else 'NOT MET'} | |")
    print(f"\nall targets: {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
