"""One promotion at a time per model and target."""

from __future__ import annotations

import threading

import pytest
from mlflow.exceptions import MlflowException

from mlflow_monitor.gate import promotion_lock as lock_module
from mlflow_monitor.gate.promotion_lock import promotion_lock
from helpers.gate import overlapping_promotions


def test_promotions_of_one_target_run_one_at_a_time():
    assert overlapping_promotions("store") == 0


def test_other_targets_are_not_held_up():
    with promotion_lock("store", "m", "alias:champion"):
        with promotion_lock("store", "m", "alias:shadow"):
            pass


def test_waiting_past_the_timeout_raises_resource_conflict_naming_the_target(monkeypatch):
    monkeypatch.setattr(lock_module, "LOCK_TIMEOUT_S", 0.2)
    held, release = threading.Event(), threading.Event()

    def holder():
        with promotion_lock("store", "m", "stage:Production"):
            held.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(MlflowException, match="another promotion of model 'm' to stage:Production") as info:
            with promotion_lock("store", "m", "stage:Production"):
                pass
        assert info.value.error_code == "RESOURCE_CONFLICT"
    finally:
        release.set()
        t.join()
