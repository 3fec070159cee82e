"""GPU check (about 30 s on one GPU): autolog never syncs the device on the training
thread, and GPU system metrics land in the run.

    python benchmarks/gpu_check.py      # exit 0 = pass; on a CPU-only machine the GPU parts are skipped

1. A tiny CUDA training loop (data made on the GPU, SGD, grad norm on) runs with
   ``mlflow_monitor.autolog()`` under ``torch.cuda.set_sync_debug_mode("error")``: any
   device sync on the training thread raises. The pipeline's flusher thread reads the
   tensors (one stacked copy per flush -- a sync by design, off the training thread);
   the sync-debug mode is process-wide, so the flusher is held back for the checked
   window by taking its delivery lock.
2. Every step's ``train/loss`` must be in the run afterwards, and ``system/gpu_*``
   metrics must be present; they are printed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time


def main() -> int:
    tmp = tempfile.mkdtemp(prefix="mm_gpu_check_")
    os.environ.setdefault("MLFLOW_MONITOR_HOME", os.path.join(tmp, "home"))
    import mlflow
    import torch

    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    import mlflow_monitor
    from mlflow_monitor.metrics import get_pipeline

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    print(f"torch {torch.__version__}, device: {torch.cuda.get_device_name(0) if cuda else 'cpu (GPU parts skipped)'}")
    mlflow_monitor.autolog(system_metrics_interval_s=0.5, log_grad_norm=True, notify=False, silent=True)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    xs = torch.randn(32, 64, device=device)
    ys = torch.randint(0, 10, (32,), device=device)
    warmup, checked = 5, 300

    def step() -> None:
        loss = torch.nn.functional.cross_entropy(model(xs), ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    failures = []
    with mlflow.start_run() as run:
        for _ in range(warmup):  # starts the run, the sampler, cuBLAS
            step()
        pipeline = get_pipeline()
        pipeline.flush(30)
        with pipeline._io_lock:  # keep the flusher's (by-design) tensor read out of the window
            if cuda:
                torch.cuda.set_sync_debug_mode("error")
            try:
                for _ in range(checked):
                    step()
            except RuntimeError as e:
                failures.append(f"device sync on the training thread: {e}")
            finally:
                if cuda:
                    torch.cuda.set_sync_debug_mode(0)
        time.sleep(1.5)  # a few system samples
    mlflow_monitor.flush(timeout=30)

    client = mlflow.MlflowClient()
    losses = client.get_metric_history(run.info.run_id, "train/loss")
    if sorted(m.step for m in losses) != list(range(1, warmup + checked + 1)):
        failures.append(f"train/loss has {len(losses)} points, expected {warmup + checked}")
    metrics = client.get_run(run.info.run_id).data.metrics
    gpu = {k: v for k, v in sorted(metrics.items()) if k.startswith("system/gpu")}
    print(f"no device sync on the training thread over {checked} steps: {'yes' if not failures else 'NO'}"
          + ("" if cuda else " (not checked: no CUDA)"))
    print(f"train/loss points: {len(losses)}; train/grad_norm last: {metrics.get('train/grad_norm')}")
    print("| metric | last value |\n|---|---:|")
    for k, v in gpu.items():
        print(f"| {k} | {v:.2f} |")
    if cuda and not gpu:
        failures.append("no system/gpu_* metrics in the run")
    for f in failures:
        print("FAIL:", f)
    print("PASS" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
