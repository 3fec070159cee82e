"""Run identity: the calling thread's active run, cached; the run pinned to the store it was first logged to."""

from __future__ import annotations

import threading

import mlflow

from mlflow_monitor.metrics import get_pipeline
from mlflow_monitor.metrics.run_context import active_run_id, ensure_run_id


def test_no_active_run_is_none_and_an_active_run_is_its_id():
    assert active_run_id() is None
    with mlflow.start_run() as run:
        assert active_run_id() == run.info.run_id
        with mlflow.start_run(nested=True) as child:
            assert active_run_id() == child.info.run_id
        assert active_run_id() == run.info.run_id
    assert active_run_id() is None


def test_a_run_is_pinned_to_the_tracking_uri_in_force_when_first_seen(tracking_uri):
    with mlflow.start_run() as run:
        assert active_run_id() == run.info.run_id
        mlflow.set_tracking_uri("sqlite:///elsewhere.db")
        assert active_run_id() == run.info.run_id
        assert get_pipeline().store_uri(run.info.run_id) == tracking_uri
        mlflow.set_tracking_uri(tracking_uri)


def test_ensure_run_id_starts_a_run_only_when_none_is_active(tracking_uri):
    run_id = ensure_run_id()
    active = mlflow.active_run()
    assert active is not None and active.info.run_id == run_id
    assert ensure_run_id() == run_id
    assert get_pipeline().store_uri(run_id) == tracking_uri


def test_another_thread_does_not_see_this_threads_run():
    seen: list = []
    with mlflow.start_run():
        t = threading.Thread(target=lambda: seen.append(active_run_id()))
        t.start()
        t.join()
    assert seen == [None]
