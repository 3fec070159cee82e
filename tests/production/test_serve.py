"""``mlflow-monitor serve``: a real uvicorn server on 127.0.0.1 driven by real HTTP, a real
``mlflow server`` as the tracking store, 1 s windows. The oracle is pandas on the rows the
test sent; MLflow's own scoring app gives the expected answers to bad payloads."""

from __future__ import annotations

import math
import re
import signal
import time
from typing import Optional

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests
from helpers.servers import MlflowServer
from helpers.serving import ServeProcess, payload, sampled_ids, traffic, train_and_register, wait_for, window_summaries

from mlflow_monitor.production import PROD_RUN_TAG

# each test starts an mlflow server and a serve process: bounded, but longer than the default 300 s on a busy host
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JSON = {"Content-Type": "application/json"}
BAD_PAYLOADS = [
    ("not json", b"{not json", JSON),
    ("missing column", b'{"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}', JSON),
    ("content type", b"x,y,c\n1,2,a\n", {"Content-Type": "text/plain"}),
    ("unknown key", b'{"rows": [[1, 2, "a"]]}', JSON),
]


@pytest.fixture
def tracking(tmp_path):
    server = MlflowServer(tmp_path / "mlflow").start()
    mlflow.set_tracking_uri(server.url)
    mlflow.set_registry_uri(server.url)
    try:
        yield server
    finally:
        server.stop()


def _sets(message: str) -> str:
    """MLflow prints Python sets in its messages: their order changes per process."""
    return re.sub(r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", message)


def _mid_window(window_s: float = 1.0) -> float:
    """Wait until we are well inside a window (no request near a boundary); returns now."""
    frac = time.time() % window_s
    if frac < 0.15 or frac > 0.8:
        time.sleep((window_s - frac + 0.15) % window_s)
    return time.time()


class Sent:
    """What the client sent and got back, per window (the oracle's input).

    The server stamps a request when it arrives, which is between the client's send and
    its answer. A request whose answer came in a later window than its send could be in
    either: those windows are ``ambiguous`` and are checked together, as one block."""

    def __init__(self) -> None:
        self.rows: list[pd.DataFrame] = []
        self.errors: dict[int, int] = {}
        self.requests: dict[int, int] = {}
        self.ids: list[str] = []
        self.spans: list[tuple[int, int]] = []  # (sent, answered) windows of straddling requests

    def _span(self, window: int, answered: Optional[float]) -> None:
        if answered is not None and int(answered) != window:
            self.spans.append((window, int(answered)))

    def ok(self, window: int, frame: pd.DataFrame, ids: list[str], answered: Optional[float] = None) -> None:
        self.rows.append(frame.assign(window=window))
        self.requests[window] = self.requests.get(window, 0) + 1
        self.ids += ids
        self._span(window, answered)

    def error(self, window: int, answered: Optional[float] = None) -> None:
        self.errors[window] = self.errors.get(window, 0) + 1
        self.requests[window] = self.requests.get(window, 0) + 1
        self._span(window, answered)

    def frame(self) -> pd.DataFrame:
        return pd.concat(self.rows, ignore_index=True)

    @property
    def ambiguous(self) -> set[int]:
        return {w for a, b in self.spans for w in range(a, b + 1)}

    def block(self, window: int) -> int:
        """The first window of the block ``window`` belongs to (itself when unambiguous)."""
        start = window
        for a, b in sorted(self.spans, reverse=True):
            if a < start <= b:
                start = a
        return start

    def rows_by_block(self, rows_by_window: dict[int, int]) -> dict[int, int]:
        out: dict[int, int] = {}
        for w, n in rows_by_window.items():
            out[self.block(w)] = out.get(self.block(w), 0) + n
        return out


def _send(session: requests.Session, url: str, rng: np.random.Generator, sent: Sent, n_rows: int,
          give_ids: bool, retry: bool = False) -> None:
    frame = traffic(rng, n_rows)
    headers = dict(JSON)
    given = [f"client-{rng.integers(1 << 60)}-{i}" for i in range(n_rows)] if give_ids else None
    if given:
        headers["X-Prediction-Id"] = ",".join(given)
    for attempt in range(5 if retry else 1):
        t = _mid_window()
        try:
            r = session.post(url + "/invocations", json=payload(frame), headers=headers, timeout=10)
        except requests.ConnectionError:  # a killed worker's connection: the same ids again
            if not retry or attempt == 4:
                raise
            continue
        assert r.status_code == 200, r.text
        ids = r.headers["X-Prediction-Id"].split(",")
        assert len(ids) == n_rows and (given is None or ids == given)
        assert len(r.json()["predictions"]) == n_rows
        sent.ok(int(t), frame, ids, answered=time.time())
        return


def _check_windows(summaries: list[dict], sent: Sent, exact_windows=None) -> None:
    """Every window equals pandas on the rows sent in it (or only ``exact_windows``); a
    block of ambiguous windows has their rows between them."""
    every = sent.frame()
    by_start = {s["start"]: s for s in summaries}
    want = sent.rows_by_block(every.groupby("window").size().to_dict())
    have = sent.rows_by_block({s["start"]: s["state"]["rows"] for s in summaries})
    for start, group in every.groupby("window"):
        if exact_windows is not None and start not in exact_windows:
            continue
        if start in sent.ambiguous:
            assert have.get(sent.block(start)) == want[sent.block(start)], (start, sent.spans)
            continue
        state = by_start[start]["state"]
        assert state["rows"] == len(group), (start, state["rows"], len(group))
        assert state["requests"] == sent.requests[start]
        x = state["columns"]["x"]["numeric"]
        assert x["count"] == len(group)
        assert x["sum"] / x["count"] == pytest.approx(group["x"].mean(), rel=1e-9)
        assert x["min"] == group["x"].min() and x["max"] == group["x"].max()
        counts = {k: v for k, v in state["columns"]["c"]["categories"]["values"]}
        assert counts == group["c"].value_counts().to_dict()
        assert sum(n for _, n in state["errors"]) == sent.errors.get(start, 0)
        metrics = by_start[start]["metrics"]
        assert metrics["prod/rows"] == len(group) and metrics["prod/x/missing_share"] == 0.0
        assert 0.0 <= metrics["prod/drift_share"] <= 1.0 and not math.isnan(metrics["prod/x/drift_score"])


def test_one_worker_captures_every_row_and_answers_like_mlflow(tracking, tmp_path):
    from fastapi.testclient import TestClient
    from mlflow.pyfunc import scoring_server

    name, version, _ = train_and_register()
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    reference_app = TestClient(scoring_server.init(model))  # MLflow's own scoring app: the oracle
    serve = ServeProcess(tmp_path / "serve", f"models:/{name}@champion", tracking.url).start()
    sent = Sent()
    rng = np.random.default_rng(1)
    try:
        with requests.Session() as s:
            assert s.get(serve.url + "/ping").status_code == 200
            assert s.get(serve.url + "/health").status_code == 200
            assert s.get(serve.url + "/version").text == mlflow.__version__
            # one worker, in a process of its own: the closer's thread in the parent never
            # shares the GIL of the process that answers requests
            assert len(serve.worker_pids()) == 1, serve.log()
            for i in range(40):
                _send(s, serve.url, rng, sent, n_rows=1 + i % 4, give_ids=i % 3 == 0)
            for _, body, headers in BAD_PAYLOADS:
                t = _mid_window()
                ours = s.post(serve.url + "/invocations", data=body, headers=headers, timeout=10)
                theirs = reference_app.post("/invocations", content=body, headers=headers)
                assert ours.status_code == theirs.status_code and ours.status_code >= 400
                if theirs.headers["content-type"].startswith("application/json"):
                    mine, ref = ours.json(), theirs.json()
                    # the stack trace names our predict wrapper's frame too; code and message are MLflow's
                    assert (mine["error_code"], _sets(mine["message"])) == (ref["error_code"], _sets(ref["message"]))
                else:
                    assert ours.text == theirs.text
                assert "X-Prediction-Id" not in ours.headers
                sent.error(int(t), answered=time.time())
            # a client id list that does not match the rows: generated ids, the request is served
            r = s.post(serve.url + "/invocations", json=payload(traffic(rng, 2)),
                       headers={**JSON, "X-Prediction-Id": "only-one"}, timeout=10)
            assert r.status_code == 200 and len(r.headers["X-Prediction-Id"].split(",")) == 2
    finally:
        assert serve.stop() == 0, serve.log()
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
    summaries = window_summaries(client, run_id)
    assert sum(s["state"]["rows"] for s in summaries) == len(sent.frame()) + 2
    assert sum(s["metrics"]["prod/errors"] for s in summaries) == len(BAD_PAYLOADS)
    last = max(sent.requests)
    _check_windows(summaries, sent, exact_windows=set(sent.requests) - {last})  # the mismatch request may share it
    assert set(sent.ids) <= sampled_ids(client, run_id, summaries)
    history = client.get_metric_history(run_id, "prod/rows")
    assert {m.timestamp for m in history} == {(s["end"]) * 1000 for s in summaries}


def _pending_partials(serve: ServeProcess) -> list:
    return list((serve.home / "production").glob("*/*/pending/*/*.json"))


def _all_windows_merged(client, run_id, sent: Sent):
    def done():
        try:
            have = {s["start"]: s["state"]["rows"] for s in window_summaries(client, run_id)}
        except Exception:
            return False
        want = sent.rows_by_block(sent.frame().groupby("window").size().to_dict())
        return all(sent.rows_by_block(have).get(k) == v for k, v in want.items())
    return done


def test_two_workers_and_a_tracking_outage_lose_nothing(tracking, tmp_path):
    name, version, _ = train_and_register()
    serve = ServeProcess(tmp_path / "serve", f"models:/{name}@champion", tracking.url, workers=2).start()
    sent = Sent()
    rng = np.random.default_rng(2)
    client = mlflow.MlflowClient()
    try:
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        for i in range(16):
            _send(requests, serve.url, rng, sent, n_rows=1 + i % 3, give_ids=False)
        tracking.stop()  # the tracking server is gone: serving must not notice
        for i in range(24):
            _send(requests, serve.url, rng, sent, n_rows=1 + i % 3, give_ids=i % 2 == 0)
        assert wait_for(lambda: _pending_partials(serve), 20), "closed windows should wait on disk"
        tracking.start()
        for i in range(8):
            _send(requests, serve.url, rng, sent, n_rows=2, give_ids=False)
        assert wait_for(_all_windows_merged(client, run_id, sent), 150, interval=2.0), serve.log()
    finally:
        assert serve.stop() == 0, serve.log()
    summaries = window_summaries(client, run_id)
    _check_windows(summaries, sent)
    assert any(len(s["workers"]) == 2 for s in summaries)
    assert set(sent.ids) <= sampled_ids(client, run_id, summaries)
    assert not _pending_partials(serve)


def test_a_worker_killed_with_sigkill_loses_at_most_its_open_windows(tracking, tmp_path):
    name, version, _ = train_and_register()
    serve = ServeProcess(tmp_path / "serve", f"models:/{name}@champion", tracking.url, workers=2).start()
    sent = Sent()
    rng = np.random.default_rng(3)
    client = mlflow.MlflowClient()
    try:
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        workers = wait_for(lambda: len(serve.worker_pids()) == 2 and serve.worker_pids(), 30)
        assert workers, serve.log()
        for i in range(20):
            _send(requests, serve.url, rng, sent, n_rows=1 + i % 3, give_ids=False)
        killed_at = time.time()
        import os

        os.kill(workers[0], signal.SIGKILL)
        for i in range(20):
            _send(requests, serve.url, rng, sent, n_rows=1 + i % 3, give_ids=False, retry=True)
        # uvicorn replaced the dead worker
        assert wait_for(lambda: len(set(serve.worker_pids()) - {workers[0]}) == 2, 30), serve.log()
        safe = {w for w in sent.requests if w + 1 + 1.0 < killed_at or w > killed_at + 0.5} - sent.ambiguous
        assert wait_for(lambda: {s["start"] for s in window_summaries(client, run_id)} >= safe, 90, 2.0)
    finally:
        assert serve.stop() == 0, serve.log()
    summaries = window_summaries(client, run_id)
    # windows closed before the kill (end + lateness passed) and windows after it: exact
    _check_windows(summaries, sent, exact_windows=safe)
    by_block = sent.rows_by_block({s["start"]: s["state"]["rows"] for s in summaries})
    per_block = sent.rows_by_block(sent.frame().groupby("window").size().to_dict())
    lost = {w: n - by_block.get(w, 0) for w, n in per_block.items() if by_block.get(w, 0) != n}
    assert {sent.block(w) for w in lost} <= {sent.block(w) for w in set(sent.requests) - safe}  # open at the kill
    assert all(v > 0 for v in lost.values())  # short, never counted twice
    assert not _pending_partials(serve)  # what the dead worker had closed was adopted and delivered
