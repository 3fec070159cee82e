"""2-process gloo DDP training under mlflow_monitor.autolog() (run by test_ddp_gloo.py).

Usage: python ddp_worker.py TRACKING_URI PORT STEPS [--two-nodes]

With --two-nodes each rank plays the local-rank-0 process of its own node
(GROUP_RANK=rank, LOCAL_RANK=0), so both sample system stats under system/node<N>/.
"""

from __future__ import annotations

import os
import sys


def _worker(rank: int, uri: str, port: int, steps: int, two_nodes: bool) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.update(LOCAL_RANK="0" if two_nodes else str(rank), GROUP_RANK=str(rank if two_nodes else 0))
    import mlflow
    import torch
    import torch.distributed as dist

    mlflow.set_tracking_uri(uri)
    import mlflow_monitor

    mlflow_monitor.autolog(system_metrics=True, system_metrics_interval_s=0.2, notify=False, silent=True,
                           health=False)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(rank)
    for _ in range(steps):
        x = torch.randn(8, 4, generator=g)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if rank == 0:
        print("RUN", mlflow.active_run().info.run_id, flush=True)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    uri, port, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    mp.spawn(_worker, args=(uri, port, steps, "--two-nodes" in sys.argv), nprocs=2, join=True)
