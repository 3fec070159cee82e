"""Demo: train a small PyTorch model with mlflow_monitor.autolog() and print where to look.

    python examples/demo_training.py            # sqlite store ./mlflow.db in this folder

No download: the data is synthetic (two noisy blobs).
"""

from __future__ import annotations

import os
import sys


def train_demo(tracking_uri: str, steps: int = 300) -> str:
    """Train a 2-layer classifier for ``steps`` optimizer steps under autolog; returns the run id."""
    import mlflow
    import torch

    import mlflow_monitor

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("mlflow-monitor-demo")
    mlflow_monitor.autolog(system_metrics_interval_s=1.0)

    g = torch.Generator().manual_seed(0)
    n = 2048
    labels = torch.randint(0, 2, (n,), generator=g)
    features = torch.randn(n, 8, generator=g) + labels[:, None] * 1.5
    split = int(n * 0.8)
    train = torch.utils.data.TensorDataset(features[:split], labels[:split])
    loader = torch.utils.data.DataLoader(train, batch_size=32, shuffle=True, generator=g)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)

    with mlflow.start_run(run_name="demo-training") as run:
        step = 0
        while step < steps:
            for x, y in loader:
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()  # autolog: train/loss, train/lr, step time, samples/s
                opt.step()
                sched.step()
                step += 1
                if step % 50 == 0 or step == steps:
                    with torch.no_grad():
                        pred = model(features[split:]).argmax(dim=1)
                        acc = (pred == labels[split:]).float().mean()
                    mlflow_monitor.log_metrics({"val/accuracy": acc}, step=step)
                if step == steps:
                    break
    mlflow_monitor.flush(timeout=30)
    return run.info.run_id


if __name__ == "__main__":
    uri = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{os.path.abspath('mlflow.db')}"
    run_id = train_demo(uri)
    print(f"run id: {run_id}")
    print(f"open it: mlflow ui --backend-store-uri {uri}")
