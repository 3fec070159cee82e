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


def _frame_and_model() -> tuple[pd.DataFrame, mlflow.models.Model]:
    """A two-column frame and a model whose signature has its columns (x float, c str)."""
    frame = pd.DataFrame({"x": [0.5, 1.5], "c": ["a", "b"]})
    return frame, mlflow.models.Model(signature=infer_signature(frame, np.array([0, 1])))


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
    frame, model = _frame_and_model()
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


def _window_states(cap: Capture) -> dict:
    cap.aggregator.step(close_all=True)
    out = {}
    for partial in cap.spool.pending():
        state = dict(partial.meta()["state"])
        sample = partial.load().sample_inputs()  # the rows kept for drift, as the closer reads them
        state["sample_rows"] = sample.sort_values(list(sample.columns)).reset_index(drop=True).to_dict("list")
        out[state["key"]["start"]] = state
    return out


def test_bodies_parsed_together_give_the_windows_each_request_alone_gives(tmp_path, clock):
    """Oracle: the same requests fed one batch a request (each body parsed alone by
    MLflow's parser, each request's rows folded alone). Fed as one batch that straddles a
    window boundary, the bodies are parsed in one call and recorded in one call a window,
    and every window's state (requests, rows, errors, column statistics, latency, the
    sample) is the same."""
    frame, model = _frame_and_model()
    rng = np.random.default_rng(7)
    records = []
    for i in range(40):
        ts = clock.now - 0.4 + i * 0.02  # 20 in the window before the boundary, 20 after
        rows = [[float(rng.normal()), str(rng.choice(["a", "b", "c"]))] for _ in range(1 + i % 3)]
        records.append((REQUEST, ts, "application/json", _body(rows), rng.integers(0, 2, len(rows)),
                        1.0 + i % 7, 200, [f"r{i}-{k}" for k in range(len(rows))]))
    records.append((ERROR, clock.now, None, None, None, 0.5, 400, None))

    def states(batches: list[list[tuple]], folder: str) -> dict:
        cap = Capture("m", "1", window="1s", state_dir=tmp_path / folder, clock=clock, deliver=False,
                      worker_id="w")
        try:
            cap.aggregator.stop(5)
            for batch in batches:
                assert feed(cap, model, {"records": batch, "dropped": 0}) == 0
            return _window_states(cap)
        finally:
            cap.close(5)

    together = states([records], "together")
    alone = states([[r] for r in records], "alone")
    assert len(together) == 2
    assert together == alone
    assert sum(s["requests"] for s in together.values()) == 41
    assert sum(s["rows"] for s in together.values()) == sum(1 + i % 3 for i in range(40))


def test_bodies_with_other_predictions_are_recorded_alone(tmp_path, clock):
    """Predictions that are not a 1-D array of the body's row count (a frame, a list, a
    wrong length): the batch's bodies still parse together, but each request is recorded
    alone, so the aggregator checks and counts the mismatched one (``malformed``)."""
    frame, model = _frame_and_model()
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False)
    try:
        cap.aggregator.stop(5)
        bad = feed(cap, model, {"dropped": 0, "records": [
            (REQUEST, clock.now, "application/json", _body([[1.0, "a"]]), np.array([0]), 3.0, 200, ["i1"]),
            (REQUEST, clock.now, "application/json", _body([[2.0, "b"]]), pd.DataFrame({"p": [1]}), 3.0, 200,
             ["i2"]),
            (REQUEST, clock.now, "application/json", _body([[3.0, "c"]]), np.array([0, 1]), 3.0, 200, ["i3"])]})
        assert bad == 0
        (state,) = _window_states(cap).values()
        assert state["requests"] == 3 and state["rows"] == 2 and cap.aggregator.malformed == 1
    finally:
        cap.close(5)


def test_a_full_buffer_drops_and_counts_every_request_of_a_batch_parsed_together(tmp_path, clock):
    frame, model = _frame_and_model()
    cap = Capture("m", "1", window="1s", state_dir=tmp_path, clock=clock, deliver=False, max_pending=3)
    try:
        cap.aggregator.stop(5)
        feed(cap, model, {"dropped": 0, "records": [
            (REQUEST, clock.now, "application/json", _body([[float(i), "a"]]), np.array([0]), 3.0, 200, [f"i{i}"])
            for i in range(4)]})
        assert cap.dropped == 4  # all or nothing: no request counted without its rows, none twice
        with pytest.raises(ValueError, match="must all be equal"):
            cap.record_parsed_batch(frame, np.array([0]), ["a", "b"], [(clock.now, 1.0, 200, 2)])
    finally:
        cap.close(5)


def _pipe_with(batches: list[bytes]) -> tuple[io.FileIO, int]:
    r, w = os.pipe()
    for blob in batches:
        os.write(w, blob)
    return open(r, "rb", buffering=0), w


def test_batches_arriving_together_are_parsed_together_and_a_later_one_apart():
    import threading

    from mlflow_monitor.production.capture_process import coalesced_batches

    one = [(REQUEST, 1.0, "application/json", b"{}", np.array([1]), 2.0, 200, ["a"])]
    stream, w = _pipe_with([encode_batch(one, 1), encode_batch(one, 2)])
    first_seen = threading.Event()

    def later() -> None:  # written only once the first two were handed on: never joined to them
        first_seen.wait(30)
        os.write(w, encode_batch(one * 3, 0) + b"\0\0")  # then a torn batch: the end of input
        os.close(w)

    writer = threading.Thread(target=later, daemon=True)
    writer.start()
    got = []
    for batch in coalesced_batches(stream, 0.05):
        got.append(batch)
        first_seen.set()
    writer.join(30)
    stream.close()
    assert [len(b["records"]) for b in got] == [2, 3] and [b["dropped"] for b in got] == [3, 0]


def test_coalescing_stops_at_its_record_cap():
    from mlflow_monitor.production.capture_process import coalesce_seconds, coalesced_batches

    one = [(REQUEST, 1.0, "application/json", b"{}", np.array([1]), 2.0, 200, ["a"])]
    stream, w = _pipe_with([encode_batch(one, 0)] * 3)
    os.close(w)
    started = time.monotonic()
    got = [len(b["records"]) for b in coalesced_batches(stream, 30.0, max_records=2)]
    stream.close()
    assert got == [2, 1] and time.monotonic() - started < 20  # the cap and the end of input, not the 30 s
    assert coalesce_seconds(2.0) == 0.5 and coalesce_seconds(0.5) == 0.125
