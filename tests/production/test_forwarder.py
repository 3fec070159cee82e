"""``CaptureForwarder`` and the capture process: the wire format, a real child process fed
over a pipe (and replaced when it dies), and a batch parsed with MLflow's parser into a
real ``Capture``."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import textwrap
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from mlflow_monitor.production import Capture
from mlflow_monitor.production.capture_process import encode_batch, feed, read_batch
from mlflow_monitor.production.forwarder import CaptureForwarder, RawRequest
from mlflow_monitor.production.records import ERROR, REQUEST

# a stand-in capture process: says it is ready, then appends what it reads to a file, unbuffered
_COPY = textwrap.dedent("""
    import os, sys
    try:
        os.write(1, b"R")
    except OSError:  # a replacement: nobody waits for it
        pass
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    while (b := os.read(0, 65536)):
        os.write(fd, b)
""")


def _batches(path) -> list[dict]:
    out = []
    with open(path, "rb") as f:
        while (batch := read_batch(f)) is not None:
            out.append(batch)
    return out


def _body(rows: list[list]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["x", "c"], "data": rows}}).encode()


def test_batches_round_trip_and_a_torn_one_ends_the_input():
    records = [(REQUEST, 1.5, "application/json", b"{}", np.array([1]), 2.0, 200, ["a"]),
               (ERROR, 2.5, None, None, None, 0.5, 400, None)]
    blob = encode_batch(records, 3) + encode_batch([], 0)
    stream = io.BytesIO(blob + blob[:5])
    first = read_batch(stream)
    assert first["dropped"] == 3 and len(first["records"]) == 2 and first["records"][1][6] == 400
    assert read_batch(stream) == {"records": [], "dropped": 0}
    assert read_batch(stream) is None


def test_forwarder_hands_every_record_over_and_replaces_a_dead_process(tmp_path):
    out = tmp_path / "wire.bin"
    fwd = CaptureForwarder(command=[sys.executable, "-c", _COPY, str(out)], restart_after_s=0.0)
    try:
        ids = fwd.record(RawRequest("application/json", _body([[1.0, "a"], [2.0, "b"]]), 2), np.array([0, 1]),
                         latency_ms=3.0)
        given = fwd.record(RawRequest("application/json", _body([[1.0, "a"]]), 1), np.array([1]),
                           latency_ms=2.0, prediction_ids=["p-1"])
        fwd.record_error(500, 1.0)
        assert len(ids) == 2 and given == ["p-1"]
        with pytest.raises(ValueError, match="2 prediction ids for 1 input rows"):
            fwd.record(RawRequest("application/json", b"", 1), np.array([0]), latency_ms=1.0, prediction_ids=["a", "b"])
        with pytest.raises(TypeError, match="RawRequest"):
            fwd.record(pd.DataFrame({"x": [1.0]}), np.array([0]), latency_ms=1.0)
        fwd.send()
        deadline = time.monotonic() + 30
        while not (out.exists() and _batches(out)) and time.monotonic() < deadline:  # the child has read it
            time.sleep(0.05)
        first = fwd.pid
        os.kill(first, signal.SIGKILL)
        while fwd._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        fwd.record(RawRequest("application/json", _body([[3.0, "c"]]), 1), np.array([1]), latency_ms=1.0)
        fwd.send()
        assert fwd.pid != first and fwd.restarts == 1
    finally:
        assert fwd.close(10)
    records = [r for b in _batches(out) for r in b["records"]]
    assert [r[0] for r in records] == [REQUEST, REQUEST, ERROR, REQUEST]
    assert records[0][7] == ids and records[1][7] == ["p-1"] and records[2][6] == 500
    assert fwd.dropped == 0
    fwd.record(RawRequest("application/json", b"", 1), np.array([0]), latency_ms=1.0)  # after close
    assert fwd.dropped == 1


def test_feed_parses_bodies_as_the_scoring_server_does(tmp_path, clock):
    frame = pd.DataFrame({"x": [0.5, 1.5], "c": ["a", "b"]})
    model = mlflow.models.Model(signature=infer_signature(frame, np.array([0, 1])))
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False)
    try:
        cap.aggregator.stop(5)
        bad = feed(cap, model, {"dropped": 2, "records": [
            (REQUEST, clock.now, "application/json", _body([[1.0, "a"], [2.0, "b"]]), np.array([0, 1]), 3.0,
             200, ["i1", "i2"]),
            (REQUEST, clock.now, "text/csv", b"x,c\n4.0,c\n", np.array([1]), 2.0, 200, ["i3"]),
            (REQUEST, clock.now, "application/json", b"{not json", np.array([1]), 2.0, 200, ["i4"]),
            (ERROR, clock.now, None, None, None, 0.5, 400, None)]})
        assert bad == 1 and cap.dropped == 2
        cap.aggregator.step(close_all=True)
        (partial,) = cap.spool.pending()
        state = partial.meta()["state"]
        assert state["requests"] == 4 and state["rows"] == 3 and state["errors"] == [[400, 1]] and state["dropped"] == 2
        assert set(state["columns"]) == {"x", "c"}
    finally:
        cap.close(5)


def test_a_capture_process_that_reads_nothing_never_hangs_close_and_is_killed(monkeypatch):
    """Adversary: a capture process that stops reading (stuck). The pipe fills; the
    forwarder's write gives up at its deadline, kills the process and counts the records
    as dropped; close() returns within its timeout instead of blocking on the pipe."""
    import mlflow_monitor.production.forwarder as forwarder_module

    monkeypatch.setattr(forwarder_module, "WRITE_TIMEOUT_S", 1.0)
    stuck = [sys.executable, "-c", "import os, time; os.write(1, b'R'); time.sleep(120)"]
    fwd = CaptureForwarder(command=stuck, ready_timeout_s=30)
    proc = fwd._proc
    body = _body([[1.0, "a"]] * 2000)  # ~30 KB a record: the 64 KB pipe fills in a few
    for _ in range(20):
        fwd.record(RawRequest("application/json", body, 2000), [0] * 2000, latency_ms=1.0)
    started = time.monotonic()
    assert fwd.close(timeout_s=3.0) is False
    assert time.monotonic() - started < 10
    assert proc.wait(10) != 0  # killed, not left behind
    assert fwd.dropped > 0  # what it could not hand over is counted, not silently gone
