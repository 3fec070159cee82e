"""Rank and node detection, and sharing one run id across a torch.distributed job.

Decisions (see docs/training.md, "Distributed training"):

- Training metrics are logged by global rank 0 only.
- System stats are sampled once per node, by the process with local rank 0, under
  ``system/<node>/...`` where ``<node>`` is ``node<N>`` and ``N`` the node rank
  (torchrun's ``GROUP_RANK``, else ``NODE_RANK``, else ``rank // LOCAL_WORLD_SIZE``).
- The run id reaches the other ranks in one of two ways:
  1. ``MLFLOW_RUN_ID`` set in every rank's environment (the launcher started the run):
     used as is, no collective;
  2. otherwise rank 0 resolves (or starts) the run and broadcasts its id with
     ``torch.distributed.broadcast_object_list`` at the first optimizer step, which
     every rank reaches together. This is one collective per job.
"""

from __future__ import annotations

import os
import sys
from typing import Optional


def is_distributed() -> bool:
    """True inside an initialized process group of more than one process."""
    dist = sys.modules.get("torch.distributed")  # never import torch just to ask
    if dist is None:
        return False
    try:  # once per optimizer step: no import statement, and is_initialized first (False off DDP)
        return dist.is_initialized() and dist.is_available() and dist.get_world_size() > 1
    except Exception:  # a torch without distributed support has no is_initialized
        return False


_world: object = None  # torch's c10d ``_World`` (the default process group's holder), once found


def maybe_distributed() -> bool:
    """The per-step pre-check of :func:`is_distributed`: False when torch.distributed has no
    default process group (then ``is_distributed()`` is False too), in about 0.1 us.

    ``dist.is_initialized()`` goes through two properties (``GroupMember.WORLD``, then
    ``_World.default_pg``), about 1 us in a training step; this reads the attribute they
    return (``_World._default_pg``, torch-private, stable since torch 2.0). Any other
    layout answers with :func:`is_distributed` itself."""
    world = _world
    if world is None:
        return _find_world()
    try:
        return world._default_pg is not None  # type: ignore[attr-defined]
    except AttributeError:
        return is_distributed()


def _find_world() -> bool:
    global _world
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return False
    world = getattr(getattr(dist, "distributed_c10d", None), "_world", None)
    if world is not None and hasattr(world, "_default_pg"):
        _world = world
        return world._default_pg is not None  # type: ignore[attr-defined]
    return is_distributed()


def rank() -> int:
    """Global rank (0 when not distributed)."""
    if is_distributed():
        import torch.distributed as dist

        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    """Rank within the node: ``LOCAL_RANK`` (torchrun), else the global rank on one node."""
    value = os.environ.get("LOCAL_RANK")
    if value not in (None, ""):
        return int(value)
    return rank()


def node_rank() -> int:
    """This node's rank in the job (0 on a single machine)."""
    for var in ("GROUP_RANK", "NODE_RANK"):
        value = os.environ.get(var)
        if value not in (None, ""):
            return int(value)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    return rank() // local_world if local_world > 0 else 0


def node_id() -> str:
    """The name system stats of this node are logged under: ``node<N>``."""
    return f"node{node_rank()}"


def is_node_leader() -> bool:
    """True in the one process per node that samples system stats."""
    return local_rank() == 0


def share_run_id(run_id: Optional[str]) -> Optional[str]:
    """Every rank gets rank 0's ``run_id`` (a collective: call it on all ranks together).

    ``MLFLOW_RUN_ID`` in the environment wins and needs no collective.
    """
    env_run = os.environ.get("MLFLOW_RUN_ID")
    if env_run:
        return env_run
    if not is_distributed():
        return run_id
    import torch.distributed as dist

    box = [run_id if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
