"""The hot path and the flusher stay out of the garbage collector's way, and leave it as they found it."""

from __future__ import annotations

import gc

import mlflow
import torch

import mlflow_monitor
from mlflow_monitor.metrics import get_pipeline
from mlflow_monitor.metrics.materialize import materialize, read_cpu_scalars
from mlflow_monitor.metrics.pipeline import gc_paused


def test_cpu_tensors_are_read_at_once_into_an_untracked_dict_with_materialize_values():
    loss = torch.tensor(0.123456789, dtype=torch.float32)
    meta = torch.empty((), device="meta")  # not a CPU tensor: left for the flusher
    out = read_cpu_scalars({"loss": loss, "lr": 0.01, "n": 3, "pair": torch.ones(2), "meta": meta})
    assert type(out["loss"]) is float
    assert out["loss"] == materialize([("r", "loss", loss, 1, 1)])[0].value  # the value the flusher reads
    assert out["lr"] == 0.01 and out["n"] == 3
    assert out["pair"].shape == (2,) and out["meta"] is meta  # not one number / not on the CPU: untouched
    assert not gc.is_tracked(read_cpu_scalars({"loss": loss, "lr": 0.01}))  # numbers only: not tracked


def test_log_metrics_queues_cpu_tensor_values_as_floats_and_stores_them(monkeypatch):
    loss = torch.tensor(0.75)
    pipe = get_pipeline()
    queued: list = []
    push = pipe.push
    monkeypatch.setattr(pipe, "push", lambda entry: (queued.append(entry), push(entry)))
    with mlflow.start_run() as run:
        mlflow_monitor.log_metrics({"a": loss, "b": 2.0}, step=1)
        mlflow_monitor.log_metrics({"c": loss}, step=1)
        assert mlflow_monitor.flush(30)
    group, row = [e for e in queued if type(e) is tuple]  # (the flush marker is queued too)
    assert type(group[1]["a"]) is float and type(row[2]) is float
    assert mlflow.MlflowClient().get_run(run.info.run_id).data.metrics == {"a": 0.75, "b": 2.0, "c": 0.75}


def test_gc_paused_restores_the_collector_and_leaves_a_disabled_one_disabled():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the user's choice stays
    finally:
        gc.enable()


def test_collector_is_enabled_after_flushes_to_the_embedded_store_and_points_arrive():
    with mlflow.start_run() as run:
        for step in range(3):  # the first cycle creates the destination, later ones pause
            mlflow_monitor.log_metrics({"loss": torch.tensor(float(step))}, step=step)
            assert mlflow_monitor.flush(30)
            assert gc.isenabled()
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 1.0), (2, 2.0)]
