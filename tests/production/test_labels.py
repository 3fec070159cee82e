"""``log_labels``: labels joined to their windows by prediction id, per-window performance
at the window's timestamp (oracle: scikit-learn on the rows joined by pandas), late
labels updating their window, and bad input changing nothing."""

from __future__ import annotations

import math
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers.production import register_version
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error, roc_auc_score

import mlflow_monitor
from mlflow_monitor.production.labels import log_labels
from mlflow_monitor.windows import find_monitoring_run

WINDOW = 60


def _traffic(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(loc=5.0, size=n),
                      "c": rng.choice(["a", "b", "c"], n)})
    proba = rng.uniform(size=n)
    preds = pd.DataFrame({"prediction": (proba > 0.5).astype(int), "probability": proba})
    return x, preds


def _two_windows(name: str, version: str) -> tuple[list[str], pd.DataFrame, float]:
    """60 rows in each of two past 1-minute windows; returns ids, predictions, first start."""
    start = (math.floor(time.time() / WINDOW) - 10) * WINDOW
    x, preds = _traffic(120, 1)
    ids = [f"p-{i}" for i in range(120)]
    ts = [start + (0 if i < 60 else WINDOW) + (i % 60) * 0.5 for i in range(120)]
    mlflow_monitor.log_predictions(x, preds, model_uri=f"models:/{name}/{version}", prediction_ids=ids,
                                   timestamps=ts, window="1m")
    return ids, preds.assign(id=ids), start


def _oracle(preds: pd.DataFrame, labels: dict[str, int]) -> dict[str, float]:
    joined = preds.merge(pd.DataFrame({"id": list(labels), "label": list(labels.values())}), on="id")
    return {"accuracy": accuracy_score(joined["label"], joined["prediction"]),
            "f1": f1_score(joined["label"], joined["prediction"]),
            "roc_auc": roc_auc_score(joined["label"], joined["probability"]), "rows": len(joined)}


def _at_step(client, run_id: str, key: str, step: int) -> list[float]:
    """Values at ``step``, oldest revision first (each revision is 1 ms later)."""
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)
            if m.step == step]


def test_labels_join_their_windows_and_late_labels_update_the_value():
    name, version, _ = register_version("labelled")
    ids, preds, start = _two_windows(name, version)
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    rng = np.random.default_rng(7)
    truth = {i: int(rng.integers(0, 2)) for i in ids}
    first = {i: truth[i] for i in ids[:40]}  # window 1 only, partly
    report = log_labels(f"models:/{name}/{version}", first)
    assert report.matched == 40 and report.unmatched == [] and report.task == "classification"
    step0 = start // WINDOW
    want = _oracle(preds, first)
    for key in ("accuracy", "f1", "roc_auc"):
        assert _at_step(client, run_id, f"prod/{key}", step0) == [pytest.approx(want[key])]
    hist = client.get_metric_history(run_id, "prod/accuracy")
    assert [m.timestamp for m in hist] == [(start + WINDOW) * 1000]  # the window's end
    # late labels: the rest of window 1 and all of window 2 (a DataFrame this time)
    late = pd.DataFrame({"prediction_id": ids[40:], "label": [truth[i] for i in ids[40:]]})
    report = log_labels(f"models:/{name}/{version}", late)
    assert report.matched == 80 and len(report.windows) == 2
    window1 = {i: truth[i] for i in ids[:60]}
    window2 = {i: truth[i] for i in ids[60:]}
    assert _at_step(client, run_id, "prod/accuracy", step0)[-1] == pytest.approx(_oracle(preds, window1)["accuracy"])
    assert _at_step(client, run_id, "prod/labelled_rows", step0)[-1] == 60
    assert _at_step(client, run_id, "prod/f1", step0 + 1) == [pytest.approx(_oracle(preds, window2)["f1"])]
    _assert_no_repeated_values(client, run_id)
    # the same labels again: nothing changes, so no new point anywhere
    before = {k: len(client.get_metric_history(run_id, k)) for k in ("prod/accuracy", "prod/labelled_rows")}
    log_labels(f"models:/{name}/{version}", window2)
    assert {k: len(client.get_metric_history(run_id, k)) for k in before} == before
    _assert_no_repeated_values(client, run_id)


def _assert_no_repeated_values(client, run_id: str) -> None:
    """No revision repeats the value of the revision before it at one step (a revision logs
    only what changed since revision r - 1)."""
    for key in ("prod/accuracy", "prod/f1", "prod/roc_auc", "prod/labelled_rows"):
        by_step: dict[int, list] = {}
        for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp):
            by_step.setdefault(m.step, []).append(m.value)
        for step, values in by_step.items():
            assert all(a != b for a, b in zip(values, values[1:])), (key, step, values)


def test_concurrent_label_calls_on_one_window_lose_nothing():
    """Four threads label disjoint parts of one window at the same moment: every label is
    stored, and the step's newest point is the score on all of them."""
    import threading

    name, version, _ = register_version("concurrent-labels")
    ids, preds, start = _two_windows(name, version)
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    rng = np.random.default_rng(11)
    truth = {i: int(rng.integers(0, 2)) for i in ids[:60]}
    parts = [dict(list(truth.items())[k::4]) for k in range(4)]
    barrier = threading.Barrier(len(parts))
    errors: list[BaseException] = []

    def call(part: dict) -> None:
        try:
            barrier.wait()
            log_labels(f"models:/{name}/{version}", part, client=mlflow.MlflowClient())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    from mlflow_monitor.production.labels import window_labels
    from mlflow_monitor.windows.stored import StoredWindow, read_window_performance

    window = StoredWindow(start, WINDOW)
    stored = window_labels(client, run_id, window)
    assert dict(zip(stored["id"], stored["label"])) == truth
    want = _oracle(preds, truth)
    newest = max((m for m in client.get_metric_history(run_id, "prod/accuracy") if m.step == start // WINDOW),
                 key=lambda m: m.timestamp)
    assert newest.value == pytest.approx(want["accuracy"])
    assert max((m for m in client.get_metric_history(run_id, "prod/labelled_rows")
                if m.step == start // WINDOW), key=lambda m: m.timestamp).value == 60
    perf = read_window_performance(client, run_id, window)
    assert perf is not None and perf["revision"] == 3 and perf["labelled_rows"] == 60
    # no repeat check here: two racing calls may both log all metrics (neither saw the
    # other's revision), so a value can appear twice at the step; the newest is current


def test_regression_labels_score_mae_and_rmse():
    name, version, _ = register_version("regressor")
    start = (math.floor(time.time() / WINDOW) - 5) * WINDOW
    rng = np.random.default_rng(3)
    x = pd.DataFrame({"x": rng.normal(size=50)})
    pred = rng.normal(size=50)
    ids = [f"r-{i}" for i in range(50)]
    mlflow_monitor.log_predictions(x, pred, model_uri=f"models:/{name}/{version}", prediction_ids=ids,
                                   timestamps=start + 1.0, window="1m")
    y = pred + rng.normal(scale=0.3, size=50)
    report = log_labels(f"models:/{name}/{version}", dict(zip(ids, y)), task="regression")
    metrics = report.windows[next(iter(report.windows))]
    assert metrics["prod/mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert metrics["prod/rmse"] == pytest.approx(math.sqrt(mean_squared_error(y, pred)))


def test_unknown_ids_are_kept_not_dropped_and_the_horizon_bounds_the_join():
    name, version, _ = register_version("horizon")
    ids, _, start = _two_windows(name, version)
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    report = log_labels(f"models:/{name}/{version}", {ids[0]: 1, "nope": 0}, horizon="1m")
    assert report.matched == 0 and report.unmatched == sorted([ids[0], "nope"])  # both windows are older than 1m
    kept = client.list_artifacts(run_id, "mlflow_monitor/prod/labels/unmatched")
    assert len(kept) == 1
    local = client.download_artifacts(run_id, kept[0].path)
    assert sorted(pd.read_parquet(local)["id"]) == sorted([ids[0], "nope"])
    assert log_labels(f"models:/{name}/{version}", {ids[0]: 1}).matched == 1  # default horizon 14d


@pytest.mark.parametrize("labels,needle", [
    ({}, "no labels"),
    (pd.DataFrame({"id": ["a"], "label": [1]}), "must have columns 'prediction_id' and 'label'"),
    (pd.DataFrame({"prediction_id": ["a", "a"], "label": [1, 0]}), "more than once"),
    (pd.DataFrame({"prediction_id": ["a", "b"], "label": [1, None]}), "missing label"),
    ([("a", 1)], "must be a mapping"),
])
def test_bad_labels_are_clear_errors_and_write_nothing(labels, needle):
    name, version, _ = register_version("bad-labels")
    ids, _, _ = _two_windows(name, version)
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    before = client.list_artifacts(run_id, "mlflow_monitor/prod")
    with pytest.raises((ValueError, TypeError), match=needle):
        log_labels(f"models:/{name}/{version}", labels)
    with pytest.raises(ValueError, match="label horizon"):
        log_labels(f"models:/{name}/{version}", {ids[0]: 1}, horizon="2y")
    assert client.list_artifacts(run_id, "mlflow_monitor/prod") == before
    assert not client.get_metric_history(run_id, "prod/accuracy")


def test_a_version_without_traffic_is_a_clear_error():
    name, version, _ = register_version("no-traffic")
    with pytest.raises(ValueError, match="has no monitoring run"):
        log_labels(f"models:/{name}/{version}", {"a": 1})


def test_the_core_reader_reads_where_the_service_writes():
    from mlflow_monitor.production import layout, monitoring_run
    from mlflow_monitor.windows import WindowKey, stored

    assert (stored.PROD_ROOT, stored.PARTIALS, stored.WINDOWS) == (layout.PROD_ROOT, layout.PARTIALS, layout.WINDOWS)
    assert (stored.PROD_TAG, stored.PROD_RUN_TAG) == (monitoring_run.PROD_TAG, monitoring_run.PROD_RUN_TAG)
    key = WindowKey("m", "1", 1_764_583_200, 300)
    window = stored.parse_window_id(key.window_id)
    assert window is not None and window.folder(stored.PARTIALS) == layout.partial_folder(key)
    assert window.folder(stored.WINDOWS) == layout.summary_folder(key) and window.index == key.index
    assert stored.parse_window_id("not-a-window") is None


def test_labels_stored_before_batches_are_the_first_batch_and_revisions_keep_counting(tmp_path):
    """A window labelled by the earlier layout (one labels.parquet, performance.json at
    revision 2): a new call keeps its labels and logs revision 3, the step's newest point."""
    import json

    from mlflow_monitor.windows.stored import LABELS, StoredWindow

    name, version, _ = register_version("legacy-labels")
    ids, preds, start = _two_windows(name, version)
    client = mlflow.MlflowClient()
    run_id = find_monitoring_run(client, name, version)
    window = StoredWindow(start, WINDOW)
    old = {i: 1 for i in ids[:30]}
    pd.DataFrame({"id": list(old), "label": list(old.values())}).to_parquet(tmp_path / "labels.parquet", index=False)
    (tmp_path / "performance.json").write_text(json.dumps({"revision": 2}), encoding="utf-8")
    for f in ("labels.parquet", "performance.json"):
        client.log_artifact(run_id, str(tmp_path / f), window.folder(LABELS))
    new = {i: 0 for i in ids[30:60]}
    log_labels(f"models:/{name}/{version}", new)
    from mlflow_monitor.production.labels import window_labels

    stored = window_labels(client, run_id, window)
    assert dict(zip(stored["id"], stored["label"])) == {**old, **new}
    [point] = [m for m in client.get_metric_history(run_id, "prod/labelled_rows") if m.step == start // WINDOW]
    assert point.value == 60 and point.timestamp == (start + WINDOW) * 1000 + 3
