"""What the training thread pays per step for autolog's hooks, hook by hook (CPU, thread_time).

Each hook of ``integrations/torch.py`` is called on its own in a loop on realistic
objects (a ``Linear(8, 4)``, its SGD optimizer, a batch of 8, a CPU loss), with the
pipeline's buffer append replaced by a no-op so nothing accumulates; then a whole
training step (forward, backward, ``optimizer.step()``, no DataLoader) with the hooks on
and off, interleaved. The hooks' total is the difference of the two steps. Then the
same step with one piece of the hooks made a no-op at a time (in the step, where caches
are cold, a hook costs more than alone in a loop): what each piece costs in situ.

    .venv/bin/python benchmarks/hook_cost.py [--n 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time


def _cpu_us(fn, n: int) -> float:
    fn()
    c = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - c) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=20_000, help="calls per hook measurement")
    ap.add_argument("--rounds", type=int, default=12, help="interleaved rounds of steps on / off (medians)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="mm-hooks-")
    os.environ["MLFLOW_MONITOR_HOME"] = os.path.join(work, "home")
    import mlflow
    import torch

    import mlflow_monitor
    from mlflow_monitor.integrations import torch as hooks_module
    from mlflow_monitor.metrics import get_pipeline
    from mlflow_monitor.metrics.materialize import read_cpu_scalars

    mlflow.set_tracking_uri(f"sqlite:///{work}/h.db")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xb, yb = torch.randn(8, 8), torch.randint(0, 4, (8,))

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rows: list[tuple[str, float]] = []
    mlflow_monitor.autolog(system_metrics=False, notify=False, health=False, silent=True, sklearn=False)
    with mlflow.start_run() as run:
        h = hooks_module.active_hooks()
        pipe = get_pipeline()
        pipe.push = lambda entry: None  # nothing queued: the hooks' own cost only
        loss = torch.nn.functional.cross_entropy(model(xb), yb).detach()
        metrics = {"train/loss": loss, "train/lr": 0.01, "train/step_time_s": 1e-4, "train/samples_per_s": 8e4}
        loader_it = object()
        step_row = (run.info.run_id, 5, 1_700_000_000_000, 0.5, 0.01, 1.0, 1.0001, 1.0002, 8)

        def backward_hook() -> None:
            h.on_backward(loss)
            h._pending_loss = None

        def post_step() -> None:
            h._pending_loss = loss
            h._post_step(opt, (opt,), {})

        n = args.n
        rows += [
            ("DataLoader `__next__`: `on_batch` (batch size, fetch time)", _cpu_us(lambda: h.on_batch(loader_it, (xb, yb), 1.0), n)),
            ("`Tensor.backward`: `on_backward` (detach, sum)", _cpu_us(backward_hook, n)),
            ("optimizer pre-step hook (no closure, no grad norm)", _cpu_us(lambda: h._pre_step(opt, (opt,), {}), n)),
            ("optimizer post-step hook `_post_step`, all of it (the common step, queued as a StepRow):", _cpu_us(post_step, n)),
            ("- of which `_resolve_run` (DDP pre-check, active run)", _cpu_us(h._resolve_run, n)),
            ("- of which `MonitoredRuns.log_step_row` (one append)", _cpu_us(lambda: h.runs.log_step_row(step_row), n)),
            ("any other step (the general path), for comparison: `StepMetrics.collect` (lr, step time, samples/s)",
             _cpu_us(lambda: h.step_metrics.collect(opt.param_groups, time.perf_counter()), n)),
            ("- and `MonitoredRuns.log_step` (`.item()` of the loss, dict, append)", _cpu_us(lambda: h.runs.log_step(run.info.run_id, metrics, 5), n)),
            ("  - of which `read_cpu_scalars`", _cpu_us(lambda: read_cpu_scalars(metrics), n)),
        ]
        on, off = [], []
        ablations: dict[str, list[float]] = {}
        rid = run.info.run_id

        def ablate(label: str, obj, name: str, value) -> None:
            real = getattr(obj, name)
            setattr(obj, name, value)
            try:
                ablations.setdefault(label, []).append(_cpu_us(step, n // 4))
            finally:
                setattr(obj, name, real)

        for r in range(args.rounds):
            h = hooks_module.active_hooks()
            variants = [
                ("on", None, None, None),
                ("`on_backward` a no-op", h, "on_backward", lambda loss: None),
                ("`MonitoredRuns.current_run_id` a constant", h.runs, "current_run_id", lambda *a, **k: rid),
                ("`MonitoredRuns.log_step_row` a no-op", h.runs, "log_step_row", lambda *a, **k: None),
                ("every hook returns at once (`suspended`)", h, "suspended", 1),
            ]
            for label, obj, name, value in variants[r % len(variants):] + variants[: r % len(variants)]:
                if obj is None:  # order rotated each round: no variant always runs first
                    on.append(_cpu_us(step, n // 4))
                else:
                    ablate(label, obj, name, value)
            mlflow_monitor.autolog(disable=True, silent=True)
            off.append(_cpu_us(step, n // 4))
            mlflow_monitor.autolog(system_metrics=False, notify=False, health=False, silent=True, sklearn=False)
        pipe.push = pipe._buffer.append
    mlflow_monitor.autolog(disable=True, silent=True)
    m_on, m_off = statistics.median(on), statistics.median(off)
    print(f"uptime: {uptime}\n")
    print("| hook (training thread) | CPU us per call |")
    print("|---|---:|")
    for label, us in rows:
        print(f"| {label} | {us:.2f} |")
    print(f"| training step, hooks on (points dropped at the buffer) | {m_on:.2f} |")
    print(f"| training step, autolog off | {m_off:.2f} |")
    print(f"| **the hooks' total per step** (on - off, median of {args.rounds} rounds) | **{m_on - m_off:.2f}** |")
    print("\n| the step with ... (in situ) | CPU us per step | saved vs hooks on |")
    print("|---|---:|---:|")
    for label, values in ablations.items():
        m = statistics.median(values)
        print(f"| {label} | {m:.2f} | {m_on - m:.2f} |")


if __name__ == "__main__":
    main()
