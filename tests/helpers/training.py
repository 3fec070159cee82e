"""Small real training loops and MLflow read-backs shared by the training tests."""

from __future__ import annotations

from typing import Optional

import mlflow
import torch


def tiny_data(n: int = 64, batch: int = 8, seed: int = 0) -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x.sum(dim=1, keepdim=True) + 0.1 * torch.randn(n, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)


def train_loop(steps: int, lr: float = 0.05, seed: int = 0, accumulate: int = 1,
               loss_hook=None, divide: bool = True) -> list[float]:
    """A plain PyTorch loop of ``steps`` optimizer steps; returns the loss of each step
    (mean over the accumulated micro-batches), read in the test, not in the hot path.

    With ``accumulate > 1`` it uses the standard idiom ``(loss / accumulate).backward()``,
    or ``loss.backward()`` on the undivided loss with ``divide=False``."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    data = tiny_data(n=8 * steps * accumulate, seed=seed)
    losses, micro = [], []
    for i, (x, y) in enumerate(data):
        loss = torch.nn.functional.mse_loss(model(x), y)
        if loss_hook is not None:
            loss = loss_hook(i, loss)
        (loss / accumulate if divide and accumulate > 1 else loss).backward()
        micro.append(loss.detach().item())
        if len(micro) == accumulate:
            opt.step()
            opt.zero_grad()
            losses.append(sum(micro) / accumulate)
            micro = []
    return losses


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    """(step, value) of every point of ``key``, in step order."""
    points = mlflow.MlflowClient().get_metric_history(run_id, key)
    return sorted(((m.step, m.value) for m in points), key=lambda p: (p[0], p[1]))


def only_run_id(experiment_id: str = "0") -> str:
    runs = mlflow.search_runs(experiment_ids=[experiment_id], output_format="list")
    assert len(runs) == 1, f"expected exactly one run, got {len(runs)}"
    return runs[0].info.run_id


def flush(timeout: float = 30.0) -> None:
    import mlflow_monitor

    assert mlflow_monitor.flush(timeout), "pipeline did not deliver every point in time"


def run_status(run_id: str) -> Optional[str]:
    return mlflow.MlflowClient().get_run(run_id).info.status


def quiet_autolog(**kw) -> None:
    """autolog() for tests: no system sampler, no Slack, no info logs (unless asked)."""
    import mlflow_monitor

    kw.setdefault("system_metrics", False)
    kw.setdefault("notify", False)
    kw.setdefault("silent", True)
    mlflow_monitor.autolog(**kw)
