"""distributed: rank and node detection from the launcher's environment, and the run-id share."""

from __future__ import annotations

import pytest

from mlflow_monitor import distributed

_VARS = ("RANK", "LOCAL_RANK", "GROUP_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE", "MLFLOW_RUN_ID")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)


def test_a_plain_process_is_rank_zero_node_zero_and_the_node_leader():
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.local_rank(), distributed.node_rank()) == (0, 0, 0)
    assert distributed.node_id() == "node0" and distributed.is_node_leader()


def test_torchrun_variables_give_rank_local_rank_and_node(monkeypatch):
    monkeypatch.setenv("RANK", "5")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("GROUP_RANK", "2")
    assert (distributed.rank(), distributed.local_rank(), distributed.node_rank()) == (5, 1, 2)
    assert distributed.node_id() == "node2" and not distributed.is_node_leader()


def test_node_rank_falls_back_to_rank_over_local_world_size(monkeypatch):
    monkeypatch.setenv("RANK", "7")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert distributed.node_rank() == 1
    monkeypatch.setenv("NODE_RANK", "3")
    assert distributed.node_rank() == 3


def test_share_run_id_prefers_mlflow_run_id_and_needs_no_collective_outside_a_group(monkeypatch):
    assert distributed.share_run_id("abc") == "abc"
    monkeypatch.setenv("MLFLOW_RUN_ID", "from-launcher")
    assert distributed.share_run_id(None) == "from-launcher"


def test_the_per_step_pre_check_follows_a_real_process_group(tmp_path):
    """maybe_distributed() against torch's own is_initialized(), before, inside and after a
    real (one-process, gloo) process group: never False while a group is set."""
    import torch.distributed as dist

    assert distributed.maybe_distributed() is dist.is_initialized() is False
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/pg", rank=0, world_size=1)
    try:
        assert distributed.maybe_distributed() is dist.is_initialized() is True
        assert not distributed.is_distributed()  # one process: not distributed
    finally:
        dist.destroy_process_group()
    assert distributed.maybe_distributed() is dist.is_initialized() is False
