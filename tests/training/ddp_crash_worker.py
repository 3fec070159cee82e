"""One torchrun worker of a 2-rank gloo DDP job under autolog where rank 1 raises at step 3
(run by test_ddp_crash.py):
``torchrun --standalone --nproc-per-node 2 ddp_crash_worker.py URI RUN_FILE MODE``.

Rank 0 writes the run id to RUN_FILE at its first step, then keeps training. MODE
``collective``: rank 0's next all-reduce fails (gloo sees the dead peer) -- an exception;
``busy``: rank 0 is busy outside any collective after step 2 (a slow data step), so
torchrun's SIGTERM reaches it first.
"""

from __future__ import annotations

import os
import sys
import time

import mlflow
import torch
import torch.distributed as dist

uri, run_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]
mlflow.set_tracking_uri(uri)
import mlflow_monitor  # noqa: E402

mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True, health=False)
dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 1))
opt = torch.optim.SGD(model.parameters(), lr=0.01)
for step in range(1, 200):
    if rank == 1 and step == 3:
        raise RuntimeError("rank 1 dies at step 3")
    loss = model(torch.randn(8, 4)).pow(2).mean()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if rank == 0 and step == 1:
        with open(run_file + ".tmp", "w") as f:
            f.write(mlflow.active_run().info.run_id)
        os.replace(run_file + ".tmp", run_file)
    time.sleep(60 if mode == "busy" and rank == 0 and step == 2 else 0.01)
dist.destroy_process_group()
