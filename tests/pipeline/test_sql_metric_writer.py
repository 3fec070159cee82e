"""The SQL fast path writes exactly what MLflow's own log_batch writes."""

from __future__ import annotations

import math

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from mlflow_monitor.metrics.sql_writer import make_sql_writer
from mlflow_monitor.metrics.writer_process import SqlWriterProcess
from mlflow_monitor.mlflow_compat import MLFLOW_VERSION


@pytest.fixture(params=["in-process", "writer-process"])
def new_writer(request):
    """``new_writer(uri)``: the bulk writer in this process, or the same writer behind a writer
    process (the embedded sqlite store's default path); every case runs through both."""
    started = []

    def make(uri):
        writer = make_sql_writer(uri)
        if request.param == "writer-process" and writer is not None:
            writer = SqlWriterProcess(uri, in_process=writer)
            started.append(writer)
        return writer

    yield make
    for w in started:
        assert not w.in_process, "the writer process did not start: the case ran in-process"
        w.close()


def _batch(offset: int = 0) -> list[Metric]:
    ms = [Metric("loss", 1.0 / (i + 1) + offset, 1000 + i, i + offset) for i in range(50)]  # latest: by step
    ms += [Metric("odd", v, 5000, 7) for v in (math.nan, math.inf, -math.inf, 2.0)]
    ms += [Metric("loss", 0.5, 1003, 3 + offset)] * 2  # exact duplicates
    ms += [Metric("late", 9.0, 10, 100), Metric("late", 1.0, 99, 5)]  # latest = highest step
    ms += [Metric("tie", math.nan, 70, 3), Metric("tie", 0.0, 70, 3)]  # equal once NaN is stored as 0: first wins
    return ms


def _state(client: MlflowClient, run_id: str) -> tuple:
    run = client.get_run(run_id)
    hist = {
        k: sorted(((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, k)))
        for k in ("loss", "odd", "late", "tie")
    }
    latest = {k: repr(v) for k, v in run.data.metrics.items()}
    return hist, latest


# MLflow before 3.17 (seen on 3.3.2 and 3.8.1) raises IntegrityError on its own sqlite store
# when a batch repeats rows of an earlier batch; from 3.17 it skips them, as our writer does.
_MLFLOW_SKIPS_REPEATED_ROWS = MLFLOW_VERSION >= (3, 17)


@pytest.mark.parametrize("offsets", [
    (0,),
    pytest.param((0, 10), marks=pytest.mark.skipif(
        not _MLFLOW_SKIPS_REPEATED_ROWS, reason="this MLflow's log_batch fails on rows repeated across batches")),
    pytest.param((10, 0), marks=pytest.mark.skipif(  # an older batch after a newer one: latest stays
        not _MLFLOW_SKIPS_REPEATED_ROWS, reason="this MLflow's log_batch fails on rows repeated across batches")),
], ids=["one-batch", "overlapping-batches", "older-batch-second"])
def test_fast_path_rows_and_latest_metrics_match_mlflow_log_batch(tracking_uri, offsets, new_writer):
    client = MlflowClient()
    exp = client.create_experiment("parity")
    ours, theirs = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
    writer = new_writer(tracking_uri)
    assert writer is not None
    for offset in offsets:  # a second batch overlaps: duplicates across batches too
        writer.write(ours, _batch(offset))
        client.log_batch(theirs, metrics=_batch(offset))
    assert _state(client, ours) == _state(client, theirs)


def test_fast_path_skips_rows_repeated_across_batches(tracking_uri, new_writer):
    client = MlflowClient()
    run_id = client.create_run(client.create_experiment("repeats")).info.run_id
    writer = new_writer(tracking_uri)
    writer.write(run_id, _batch(0))
    writer.write(run_id, _batch(10))  # the "odd" and "late" rows repeat the first batch's
    assert len(client.get_metric_history(run_id, "odd")) == 4
    assert len(client.get_metric_history(run_id, "late")) == 2
    assert len(client.get_metric_history(run_id, "loss")) == 102  # 2 x (50 steps + the duplicate pair's one row)


def test_fast_path_refuses_deleted_and_unknown_runs_like_mlflow(tracking_uri, new_writer):
    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    client.delete_run(run_id)
    writer = new_writer(tracking_uri)
    with pytest.raises(MlflowException) as deleted:
        writer.write(run_id, [Metric("m", 1.0, 1, 0)])
    assert deleted.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as missing:
        writer.write("0" * 32, [Metric("m", 1.0, 1, 0)])
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_non_sql_stores_get_no_fast_path(tmp_path):
    assert make_sql_writer(f"file://{tmp_path}/mlruns") is None
    assert make_sql_writer("http://127.0.0.1:5000") is None
    mlflow.set_tracking_uri(None)


def test_fast_path_rejects_invalid_metric_names_like_mlflow(tracking_uri, new_writer):
    run_id = MlflowClient().create_run("0").info.run_id
    with pytest.raises(MlflowException) as bad:
        new_writer(tracking_uri).write(run_id, [Metric("bad//../name", 1.0, 1, 0)])
    assert bad.value.error_code == "INVALID_PARAMETER_VALUE"
    assert MlflowClient().get_run(run_id).data.metrics == {}


def test_fast_path_matches_log_batch_on_long_and_wide_batches(tracking_uri, new_writer):
    """Several statements per key (100, 10 and 1 rows) and several latest-metrics upserts (>100 keys)."""
    client = MlflowClient()
    exp = client.create_experiment("wide")
    ours, theirs = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
    batch = [Metric("long", (-1.0) ** i * i / 7, 2000 + i // 3, i) for i in range(123)]
    batch += [Metric(f"wide/{k:03d}", float(k) if k % 50 else math.nan, 3000, k % 7) for k in range(205)]
    batch += [Metric("wide/007", -math.inf, 3000, 9)]  # a later step with -inf: becomes the latest
    new_writer(tracking_uri).write(ours, batch)
    for i in range(0, len(batch), 1000):
        client.log_batch(theirs, metrics=batch[i : i + 1000])

    def state(run_id):
        metrics = client.get_run(run_id).data.metrics
        rows = {k: sorted((m.step, m.timestamp, repr(m.value)) for m in client.get_metric_history(run_id, k))
                for k in ("long", "wide/007", "wide/050", "wide/204")}
        return {k: repr(v) for k, v in metrics.items()}, rows

    assert state(ours) == state(theirs)
    assert len(state(ours)[0]) == 206
