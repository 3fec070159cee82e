"""Merging across workers: several Captures (workers) of one version deliver partials of the
same windows; the closer's merged windows equal pandas on all rows, late partials re-merge
the window, re-delivery and a second closer change nothing. Real sqlite store."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers.production import register_version

from mlflow_monitor.production import PROD_RUN_TAG, Capture, WindowCloser, log_predictions


def _rows(rng, n):
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(loc=5.0, size=n),
                         "c": rng.choice(["a", "b", "c"], n)})


def _summaries(client, run_id):
    out = {}
    for day in client.list_artifacts(run_id, "mlflow_monitor/prod/windows"):
        for w in client.list_artifacts(run_id, day.path):
            local = client.download_artifacts(run_id, f"{w.path}/summary.json")
            data = json.loads(open(local).read())
            out[data["start"]] = data
    return out


def test_three_workers_merge_exactly_and_late_partials_re_merge(tmp_path, clock):
    name, version, _ = register_version()
    rng = np.random.default_rng(7)
    workers = [Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id=f"w{i}",
                       close_windows=(i == 0)) for i in range(3)]
    sent = []
    try:
        for step in range(30):
            clock.now = 1_764_583_200.0 + step * 0.1  # windows ...200 to ...202
            w = workers[step % 3]
            rows = _rows(rng, 1 + step % 5)
            w.record(rows, (rows["x"] > 0).astype(int), latency_ms=1.0 + step)
            sent.append(rows.assign(window=int(clock.now)))
        # every worker's partials on disk before the closer (worker 0) may merge: else a pass of
        # its thread between two workers' deliveries merges twice (revision 1), as on a busy host
        for w in workers[1:]:
            assert w.flush(30, close_open=True)
        assert workers[0].flush(30, close_open=True)
        clock.now += 10
        assert workers[0].flush(30)
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        every = pd.concat(sent, ignore_index=True)
        merged = _summaries(client, run_id)
        assert sorted(merged) == sorted(every["window"].unique())
        for start, group in every.groupby("window"):
            state = merged[start]["state"]
            assert state["rows"] == len(group)
            assert state["columns"]["x"]["numeric"]["sum"] == pytest.approx(group["x"].sum(), rel=1e-12)
            assert dict(state["columns"]["c"]["categories"]["values"]) == group["c"].value_counts().to_dict()
            assert merged[start]["workers"] == ["w0", "w1", "w2"]
            assert not merged[start]["revision"]
        # a late row for window 200 from worker 1: a second partial (seq 1), the window re-merges
        late = _rows(rng, 3)
        workers[1].record(late, [0, 1, 0], latency_ms=1.0, timestamp=1_764_583_200.5)
        assert workers[1].flush(30)
        assert workers[0].flush(30)
        again = _summaries(client, run_id)[1_764_583_200]
        first = every[every["window"] == 1_764_583_200]
        assert again["revision"] and again["state"]["rows"] == len(first) + 3
        assert "w1__000001" in again["partials"]
        rows_history = [m for m in client.get_metric_history(run_id, "prod/rows") if m.step == 1_764_583_200]
        # revision 1 is 1 ms after revision 0, so the step's newest point is the current value
        assert [m.value for m in sorted(rows_history, key=lambda m: m.timestamp)] == [len(first), len(first) + 3]
        assert [m.timestamp for m in sorted(rows_history, key=lambda m: m.timestamp)] == [1_764_583_201_000,
                                                                                          1_764_583_201_001]
        assert again["revision_number"] == 1
        # a metric the late rows did not change gets no second point at the step
        errors_history = [m for m in client.get_metric_history(run_id, "prod/errors") if m.step == 1_764_583_200]
        assert [(m.value, m.timestamp) for m in errors_history] == [(0.0, 1_764_583_201_000)]
        # a second closer (another replica) over the same partials logs nothing new
        other = WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock)
        assert other.run_once() == 0
        # re-delivering a partial (same worker, same seq) overwrites it: nothing counted twice
        folder = "mlflow_monitor/prod/partials/2025-12-01/20251201T100000Z-1s"
        local = client.download_artifacts(run_id, f"{folder}/w2__000000.json", str(tmp_path / "dl"))
        client.log_artifact(run_id, local, folder)
        workers[0].delivery.closer._merged.clear()
        assert workers[0].flush(30)
        assert _summaries(client, run_id)[1_764_583_200]["state"]["rows"] == len(first) + 3
    finally:
        for w in workers:
            w.close(10)


def test_log_predictions_windows_rows_by_timestamp(tmp_path):
    name, version, _ = register_version("batch-model")
    rng = np.random.default_rng(3)
    rows = _rows(rng, 500)
    ts = pd.Timestamp("2025-11-30T09:00:00Z") + pd.to_timedelta(rng.integers(0, 3 * 3600, 500), unit="s")
    ids = log_predictions(rows, rows["x"] > 0, model_uri=f"models:/{name}/{version}", timestamps=ts, window="1h")
    assert len(set(ids)) == 500
    client = mlflow.MlflowClient()
    run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
    merged = _summaries(client, run_id)
    hours = ts.floor("h")
    expected = pd.Series(1, index=hours).groupby(level=0).sum()
    assert {pd.Timestamp(k, unit="s", tz="UTC"): v["state"]["rows"] for k, v in merged.items()} == expected.to_dict()
    assert all(v["state"]["requests"] == 0 for v in merged.values())
    for start, s in merged.items():
        mask = (hours == pd.Timestamp(start, unit="s", tz="UTC"))
        assert s["metrics"]["prod/x/mean"] == pytest.approx(rows["x"][mask].mean(), rel=1e-12)
        assert s["metrics"]["prod/prediction/share/True"] == pytest.approx((rows["x"][mask] > 0).mean())


@pytest.mark.parametrize("kwargs,error", [
    ({"model_uri": "runs:/abc/model"}, "models:/"),
    ({"model_uri": "models:/batch-model/1", "prediction_ids": ["a"]}, "1 prediction ids for 3 rows"),
    ({"model_uri": "models:/batch-model/1", "prediction_ids": ["a", "a", "b"]}, "unique"),
    ({"model_uri": "models:/batch-model/1", "timestamps": ["2025-01-01", None, "x"]}, "timestamps"),
    ({"model_uri": "models:/batch-model/1", "window": "7x"}, "window granularity"),
])
def test_log_predictions_bad_input_is_a_clear_error_and_logs_nothing(kwargs, error):
    register_version("batch-model")
    rows = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=error):
        log_predictions(rows, [0, 1, 0], **kwargs)
    client = mlflow.MlflowClient()
    assert "mlflow_monitor.prod.run_id" not in client.get_model_version("batch-model", "1").tags


def test_pyfunc_wrapper_captures_predictions(tmp_path):
    from sklearn.linear_model import LogisticRegression

    from mlflow_monitor.production import wrap_model

    rng = np.random.default_rng(0)
    frame = _rows(rng, 200)[["x", "y"]]
    model = LogisticRegression().fit(frame, (frame["x"] > 0).astype(int))
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    mv = mlflow.register_model(info.model_uri, "wrapped")
    with mlflow.start_run():
        wrapped = wrap_model(f"models:/wrapped/{mv.version}", window="1s")
    loaded = mlflow.pyfunc.load_model(wrapped.model_uri)
    out = loaded.predict(frame.iloc[:50])
    assert list(out) == list(model.predict(frame.iloc[:50]))
    capture = loaded.unwrap_python_model()._capture
    assert capture.model_name == "wrapped" and capture.version == str(mv.version)
    assert capture.close(30)
    client = mlflow.MlflowClient()
    run_id = client.get_model_version("wrapped", mv.version).tags[PROD_RUN_TAG]
    assert sum(m.value for m in client.get_metric_history(run_id, "prod/rows")) == 50


def test_unreadable_partials_are_set_aside_and_the_rest_delivered(tmp_path, clock, monitor_logs):
    name, version, _ = register_version()
    cap = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id="w1")
    try:
        cap.record(_rows(np.random.default_rng(0), 2), [0, 1], latency_ms=1.0)
        (cap.spool.folder / "20251201T095959Z-1s__000000.json").write_text("{torn")  # a torn file on disk
        clock.now += 5
        assert cap.flush(30)
        rejected = list((cap.spool.root.parent / "rejected").iterdir())
        assert [p.name for p in rejected] == ["w1__20251201T095959Z-1s__000000.json"]
        assert "moved unreadable window partial" in monitor_logs.text
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        # a partial in the run that cannot be read: that window is skipped, the others are logged
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "w9__000000.json").write_text("not json")
        (bad / "w9__000000.parquet").write_bytes(b"")
        client.log_artifacts(run_id, str(bad), "mlflow_monitor/prod/partials/2025-12-01/20251201T100003Z-1s")
        cap.record(_rows(np.random.default_rng(1), 3), [0, 1, 0], latency_ms=1.0, timestamp=clock.now)
        clock.now += 5
        assert cap.flush(30)
        merged = _summaries(client, run_id)
        assert 1_764_583_203 not in merged and merged[int(clock.now - 5)]["state"]["rows"] == 3
        assert "20251201T100003Z-1s" in monitor_logs.text and "was not logged" in monitor_logs.text
    finally:
        cap.close(10)


def test_merged_partials_are_pruned_and_their_rows_outlive_them(tmp_path, clock):
    """Once a merged window's late check is over, the closer deletes its partials (through
    the artifact repository); the window's rows stay readable (``rows.parquet``), and a
    partial arriving after that merges onto the stored window: nothing lost or doubled."""
    from mlflow_monitor.windows.stored import StoredWindow, read_window_rows

    name, version, _ = register_version("pruned")
    rng = np.random.default_rng(5)
    workers = [Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id=f"p{i}",
                       close_windows=False) for i in range(2)]
    try:
        clock.now = 1_764_583_200.2
        sent = [_rows(rng, 4), _rows(rng, 6)]
        ids = [workers[i].record(rows, np.zeros(len(rows), dtype=int), latency_ms=1.0) for i, rows in enumerate(sent)]
        clock.now += 10
        for w in workers:
            assert w.flush(30)
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        closer = WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock, late_s=5)
        assert closer.run_once() == 1
        folder = "mlflow_monitor/prod/partials/2025-12-01/20251201T100000Z-1s"
        assert len(client.list_artifacts(run_id, folder)) == 4  # pruned on a later pass, not in the merging one
        assert closer.run_once() == 0 and closer.partials_pruned == 2
        assert client.list_artifacts(run_id, folder) == []
        window = StoredWindow(1_764_583_200, 1)
        every = sorted(i for part in ids for i in part)
        assert sorted(read_window_rows(client, run_id, window)["__prediction_id"]) == every
        # a late partial after the pruning: merged onto the stored window
        late = _rows(rng, 3)
        late_ids = workers[1].record(late, [1, 1, 1], latency_ms=1.0, timestamp=1_764_583_200.5)
        assert workers[1].flush(30)
        closer.hint(_key(name, version))
        assert closer.run_once() == 1
        summary = _summaries(client, run_id)[1_764_583_200]
        assert summary["state"]["rows"] == 13 and summary["revision_number"] == 1
        assert sorted(summary["partials"]) == ["p0__000000", "p1__000000", "p1__000001"]
        x = pd.concat([*sent, late])["x"]
        assert summary["state"]["columns"]["x"]["numeric"]["sum"] == pytest.approx(x.sum(), rel=1e-12)
        assert sorted(read_window_rows(client, run_id, window)["__prediction_id"]) == sorted(every + late_ids)
        closer.run_once()
        assert client.list_artifacts(run_id, folder) == [] and closer.partials_pruned == 3
        # the same partial delivered again after its pruning is not counted twice
        assert closer.run_once() == 0
    finally:
        for w in workers:
            w.close(10)


def _key(name, version):
    from mlflow_monitor.windows import WindowKey

    return WindowKey(name, str(version), 1_764_583_200, 1)


def test_a_closer_never_writes_an_older_merge_over_a_newer_one_whose_partials_are_pruned(tmp_path, clock):
    """Two closers of one run (two hosts): A lists a window's late partial L1 and merges it;
    meanwhile B merges L1 and a later L2 onto the stored window and, on its next pass,
    prunes both. A's older merge (without L2) must not overwrite B's: L2's rows would then
    be gone (pruned, and not in A's rows.parquet). A sees the newer summary and backs off."""
    from mlflow_monitor.windows.stored import StoredWindow, read_window_rows

    name, version, _ = register_version("two-closers")
    rng = np.random.default_rng(9)
    worker = Capture(name, version, window="1s", state_dir=tmp_path, clock=clock, worker_id="w", close_windows=False)
    try:
        clock.now = 1_764_583_200.2
        ids = worker.record(_rows(rng, 4), [0, 0, 0, 0], latency_ms=1.0)
        clock.now += 10
        assert worker.flush(30)
        client = mlflow.MlflowClient()
        run_id = client.get_model_version(name, version).tags[PROD_RUN_TAG]
        a, b = (WindowCloser(client, lambda: run_id, name, version, granularity_s=1, clock=clock, late_s=5)
                for _ in range(2))
        assert a.run_once() == 1
        a.run_once()  # the late check is over: the first partial is pruned
        assert a.partials_pruned == 1
        ids += worker.record(_rows(rng, 2), [1, 1], latency_ms=1.0, timestamp=1_764_583_200.5)  # L1
        assert worker.flush(30)
        original = a._merge
        raced = []

        def merge_while_b_races(*args, **kwargs):
            out = original(*args, **kwargs)  # A's merge: the stored window + L1
            if not raced:
                raced.append(True)
                ids.extend(worker.record(_rows(rng, 3), [1, 1, 1], latency_ms=1.0, timestamp=1_764_583_200.7))
                assert worker.flush(30)  # L2
                b.hint(_key(name, version))
                assert b.run_once() == 1  # B: the stored window + L1 + L2
                b.run_once()  # ... and B prunes L1 and L2
                assert b.partials_pruned == 2
            return out

        a._merge = merge_while_b_races
        a.hint(_key(name, version))
        logged = a.run_once()
        window = StoredWindow(1_764_583_200, 1)
        assert sorted(read_window_rows(client, run_id, window)["__prediction_id"]) == sorted(ids)  # nothing lost
        assert logged == 0  # A backs off: B's summary lists what A did not merge
        summary = _summaries(client, run_id)[1_764_583_200]
        assert sorted(summary["partials"]) == ["w__000000", "w__000001", "w__000002"]
        assert summary["state"]["rows"] == 9
        assert sorted(read_window_rows(client, run_id, window)["__prediction_id"]) == sorted(ids)
        assert a.run_once() == 0  # and A's next pass changes nothing
        assert sorted(read_window_rows(client, run_id, window)["__prediction_id"]) == sorted(ids)
    finally:
        worker.close(10)
