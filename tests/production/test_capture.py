"""``Capture``: the request path, the aggregator, the window spool and (in-process) the
delivery and merge into the version's monitoring run, against a real sqlite store."""

from __future__ import annotations

import json
import os
import stat

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers.production import register_version

from mlflow_monitor.production import PROD_RUN_TAG, PROD_TAG, Capture


def _rows(rng, n):
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(loc=5.0, size=n),
                         "c": rng.choice(["a", "b", "c"], n)})


@pytest.mark.parametrize("kwargs,needle", [
    ({"window": "0s"}, "window granularity"), ({"window": "1w"}, "window granularity"),
    ({"sample": 0}, "sample must be"), ({"sample": 1.5}, "sample must be"),
    ({"sample_rows": 0}, "sample_rows"),
])
def test_bad_settings_are_clear_errors(kwargs, needle, tmp_path):
    with pytest.raises(ValueError, match=needle):
        Capture("m", "1", state_dir=tmp_path, deliver=False, **kwargs)
    with pytest.raises(ValueError, match="version"):
        Capture("m", "latest", state_dir=tmp_path, deliver=False)
    assert not any(tmp_path.rglob("*.json"))


def test_record_returns_ids_and_only_appends(tmp_path, clock):
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False)
    try:
        cap.aggregator.stop(5)  # freeze the aggregator: what record() does is then visible alone
        ids = cap.record([{"x": 1.0}, {"x": 2.0}], [0, 1], latency_ms=3.0)
        given = cap.record(pd.DataFrame({"x": [3.0]}), [1], latency_ms=2.0, prediction_ids=["p-1"])
        cap.record_error(400, 0.5)
        assert len(ids) == 2 and len(set(ids)) == 2 and given == ["p-1"]
        assert len(cap._buffer) == 3 and not list(cap.spool.folder.glob("*.json"))
        with pytest.raises(ValueError, match="2 prediction ids for 1 input rows"):
            cap.record([{"x": 1.0}], [0], latency_ms=1.0, prediction_ids=["a", "b"])
    finally:
        cap.close(5)


def test_windows_close_by_time_into_the_spool(tmp_path, clock):
    rng = np.random.default_rng(0)
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False, worker_id="w1")
    try:
        cap.aggregator.stop(5)
        for i in range(10):
            clock.now = 1_764_583_200.0 + i * 0.25  # 2.5 s of traffic: windows 0, 1 and 2
            cap.record(_rows(rng, 3), rng.integers(0, 2, 3), latency_ms=1.0 + i)
        cap.aggregator.step()  # t = 202.25: window 0 (ended 201.0) is due after the 0.5 s lateness
        assert [p.name for p in cap.spool.folder.glob("*.json")] == ["20251201T100000Z-1s__000000.json"]
        clock.now = 1_764_583_202.6  # window 1 ended at 202.0: due at 202.5
        cap.aggregator.step()
        names = sorted(p.name for p in cap.spool.folder.glob("*.json"))
        assert names == ["20251201T100000Z-1s__000000.json", "20251201T100001Z-1s__000000.json"]
        assert cap.aggregator.open_windows[0].start == 1_764_583_202
        # a late record for a closed window becomes a second partial of it (seq 1)
        cap.record(_rows(rng, 1), [1], latency_ms=1.0, timestamp=1_764_583_200.5)
        cap.aggregator.step()
        assert (cap.spool.folder / "20251201T100000Z-1s__000001.json").exists()
        first = json.loads((cap.spool.folder / names[0]).read_text())
        assert first["state"]["requests"] == 4 and first["state"]["rows"] == 12 and first["worker_id"] == "w1"
        for path in cap.spool.folder.iterdir():
            if path.is_file():
                assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(cap.spool.folder).st_mode) == 0o700
    finally:
        cap.close(5)


def test_malformed_predictions_are_skipped_and_never_raise(tmp_path, clock, monitor_logs):
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False)
    try:
        cap.record([{"x": 1.0}, {"x": 2.0}], [0, 1, 2], latency_ms=1.0)  # 3 predictions for 2 rows
        cap.record([{"x": 1.0}], [0], latency_ms=1.0)
        clock.now += 5
        cap.flush(5)
        state = json.loads(next(cap.spool.folder.glob("*.json")).read_text())["state"]
        assert state["requests"] == 2 and state["rows"] == 1 and cap.aggregator.malformed == 1
        assert "3 predictions for 2 input rows" in monitor_logs.text
    finally:
        cap.close(5)


def test_full_buffer_drops_and_counts(tmp_path, clock):
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False, max_pending=5)
    try:
        cap.aggregator.stop(5)
        for _ in range(8):
            cap.record([{"x": 1.0}], [0], latency_ms=1.0)
        assert cap.dropped == 3
        cap.aggregator.step(close_all=True)
        state = json.loads(next(cap.spool.folder.glob("*.json")).read_text())["state"]
        assert state["requests"] == 5 and state["dropped"] == 3
    finally:
        cap.close(5)


def test_disk_refusing_writes_keeps_windows_in_memory(tmp_path, clock):
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False)
    try:
        cap.aggregator.stop(5)
        cap.record([{"x": 1.0}], [0], latency_ms=1.0, timestamp=clock.now)
        # the partial's temporary file is /dev/full: the kernel answers ENOSPC, as on a full disk
        os.symlink("/dev/full", cap.spool.folder / ".20251201T100000Z-1s__000000.parquet.tmp")
        cap.aggregator.step(close_all=True)
        assert cap.aggregator.unwritten == 1 and cap.aggregator.write_failures == 1
        assert not list(cap.spool.folder.glob("*.json")) and not list(cap.spool.folder.glob(".*.tmp"))
        cap.aggregator.step()
        assert cap.aggregator.unwritten == 0 and len(list(cap.spool.folder.glob("*.json"))) == 1
    finally:
        cap.close(5)


def test_capture_delivers_and_logs_windows_in_the_monitoring_run(tmp_path, clock):
    name, version, source_run = register_version()
    rng = np.random.default_rng(5)
    sent = []
    cap = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id="w1")
    try:
        for i in range(20):
            clock.now = 1_764_583_200.0 + i * 0.1  # all in two windows
            rows = _rows(rng, 4)
            cap.record(rows, rows["x"] > 0, latency_ms=2.0, status=200)
            sent.append(rows.assign(window=int(clock.now)))
        cap.record_error(400, 1.0)
        clock.now += 10
        assert cap.flush(60)
    finally:
        cap.close(30)
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
    run = client.get_run(run_id)
    assert run.data.tags[PROD_TAG] == f"{name}/{version}"
    assert run.info.experiment_id == client.get_run(source_run).info.experiment_id
    every = pd.concat(sent, ignore_index=True)
    history = {m.step: m for m in client.get_metric_history(run_id, "prod/rows")}
    for start, group in every.groupby("window"):
        metric = history[start // 1]
        assert metric.value == len(group) and metric.timestamp == (start + 1) * 1000
    means = {m.step: m.value for m in client.get_metric_history(run_id, "prod/x/mean")}
    for start, group in every.groupby("window"):
        assert means[start] == pytest.approx(group["x"].mean(), rel=1e-12)
    errors = {m.step: m.value for m in client.get_metric_history(run_id, "prod/errors")}
    assert sum(errors.values()) == 1
    assert {m.key for m in [*client.get_metric_history(run_id, "prod/drift_share")]} == {"prod/drift_share"}
    assert client.get_metric_history(run_id, "prod/x/drift_score")
    assert client.get_metric_history(run_id, "prod/latency_p99_ms")[0].value == pytest.approx(2.0, rel=0.04)
    summaries = [a.path for a in client.list_artifacts(run_id, "mlflow_monitor/prod/windows/2025-12-01")]
    assert len(summaries) == 2


class _Unfoldable:
    """A value pandas can neither hash nor turn into text."""

    __hash__ = None  # type: ignore[assignment]

    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_rows_that_cannot_be_folded_are_counted_and_leave_the_window_intact(tmp_path, clock, monitor_logs):
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False)
    try:
        cap.aggregator.stop(5)
        cap.record([{"x": 1.0, "o": "a"}], [0], latency_ms=1.0)
        cap.aggregator.step()
        cap.record([{"x": 2.0, "o": _Unfoldable()}], [1], latency_ms=1.0)
        cap.aggregator.step()
        cap.aggregator.step(close_all=True)
        state = json.loads(next(cap.spool.folder.glob("*.json")).read_text())["state"]
        assert state["requests"] == 2 and state["rows"] == 2 and state["sampled_rows"] == 1
        assert state["columns"]["x"]["numeric"]["count"] == 1 and state["columns"]["x"]["numeric"]["sum"] == 1.0
        assert "could not fold 1 captured rows" in monitor_logs.text
    finally:
        cap.close(5)


def test_drift_stays_quiet_on_reference_like_traffic_and_flags_a_shifted_segment(tmp_path, clock):
    """The windows' drift comes from the gate's engine against the logged reference: seven
    windows drawn like the reference raise nothing, two with ``x`` shifted by 1 sd do."""
    from helpers.production import reference_frame

    name, version, _ = register_version()
    cap = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id="w1")
    try:
        for w in range(9):
            clock.now = 1_764_583_200.0 + w + 0.5
            rows = reference_frame(600, seed=100 + w)
            if w >= 7:
                rows["x"] += 1.0
            cap.record(rows, rows["x"] > 0, latency_ms=1.0)
        clock.now += 10
        assert cap.flush(60)
    finally:
        cap.close(30)
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
    drifted = {m.step - 1_764_583_200: m.value for m in client.get_metric_history(run_id, "prod/x/drifted")}
    share = {m.step - 1_764_583_200: m.value for m in client.get_metric_history(run_id, "prod/drift_share")}
    assert drifted == {w: float(w >= 7) for w in range(9)}
    assert all(share[w] == 0.0 for w in range(7)) and all(share[w] > 0 for w in (7, 8))


def test_generated_ids_are_unique_and_ignore_the_users_random_seed():
    import random

    from mlflow_monitor.production import new_prediction_ids

    random.seed(0)
    first = new_prediction_ids(1)[0]
    random.seed(0)
    assert new_prediction_ids(1)[0] != first
    many = [i for _ in range(20_000) for i in new_prediction_ids(3)]
    assert len(set(many)) == len(many) and all(len(i.rpartition("-")[0]) == 32 for i in many)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker draws its own ids
        os.write(w, new_prediction_ids(1)[0].encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 64).decode()
    assert child != new_prediction_ids(1)[0] and len(child) == 32


def test_batch_rows_after_close_are_refused(tmp_path):
    cap = Capture("m", "1", state_dir=tmp_path, deliver=False)
    cap.close(5)
    with pytest.raises(RuntimeError, match="closed"):
        cap.record_batch([{"x": 1.0}], [0])
    assert cap.record([{"x": 1.0}], [0], latency_ms=1.0) and cap.dropped == 1  # the request path never raises
