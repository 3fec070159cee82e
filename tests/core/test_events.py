"""The event bus and the notifier entry points (mlflow_monitor.events)."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from mlflow_monitor import events
from mlflow_monitor.events import HealthAlert, RunSummary, Verdict


def _alert() -> HealthAlert:
    return HealthAlert(run_id="r1", rule="nan_loss", message="loss is nan")


def test_subscribers_get_only_the_kinds_they_asked_for():
    alerts, everything = [], []
    off_alerts = events.subscribe(alerts.append, HealthAlert)
    off_all = events.subscribe(everything.append)
    try:
        events.publish(_alert())
        events.publish(Verdict(model_name="m", version="1", target="alias:champion", passed=True))
    finally:
        off_alerts()
        off_all()
    assert [type(e) for e in alerts] == [HealthAlert]
    assert [type(e) for e in everything] == [HealthAlert, Verdict]


def test_unsubscribed_callbacks_get_nothing():
    got = []
    off = events.subscribe(got.append)
    off()
    events.publish(_alert())
    assert got == []


def test_a_failing_subscriber_never_reaches_the_publisher_or_other_subscribers():
    got = []

    def broken(event):
        raise RuntimeError("consumer bug")

    offs = [events.subscribe(broken), events.subscribe(got.append)]
    try:
        events.publish(RunSummary(run_id="r1", status="FINISHED", duration_s=1.0))  # must not raise
    finally:
        for off in offs:
            off()
    assert len(got) == 1


def test_dedup_keys_name_what_they_deduplicate():
    assert _alert().dedup_key == "health:r1:nan_loss"


def test_enable_notifiers_loads_the_entry_point_group_and_passes_the_config(monkeypatch):
    calls = []
    module = type("M", (), {})()
    module.enable = lambda config=None: calls.append(("enable", config)) or object()
    module.disable = lambda timeout=None: calls.append(("disable", timeout))
    monkeypatch.setitem(__import__("sys").modules, "fake_notifier_mod", module)
    fake = EntryPoint(name="fake", value="fake_notifier_mod:enable", group=events.NOTIFIER_GROUP)
    monkeypatch.setattr(events, "_notifier_entry_points", lambda: [fake])
    assert events.enable_notifiers({"channel": "#x"}) == ["fake"]
    assert events.enable_notifiers() == ["fake"]
    events.disable_notifiers(2.0)
    assert calls == [("enable", {"channel": "#x"}), ("enable", None), ("disable", 2.0)]


def test_a_notifier_that_is_not_configured_or_broken_is_skipped(monkeypatch):
    module = type("M", (), {})()
    module.enable = lambda config=None: None  # not configured
    monkeypatch.setitem(__import__("sys").modules, "quiet_notifier_mod", module)
    eps = [EntryPoint(name="quiet", value="quiet_notifier_mod:enable", group=events.NOTIFIER_GROUP),
           EntryPoint(name="broken", value="no_such_module_anywhere:enable", group=events.NOTIFIER_GROUP)]
    monkeypatch.setattr(events, "_notifier_entry_points", lambda: eps)
    assert events.enable_notifiers() == []  # neither running; nothing raised
    events.disable_notifiers(0.1)  # a module without disable() is skipped too


def test_the_slack_notifier_is_registered_in_the_group():
    assert [ep.value for ep in events._notifier_entry_points() if ep.name == "slack"] == [
        "mlflow_monitor.integrations.slack:enable"]


@pytest.mark.parametrize("kind", [HealthAlert, RunSummary, Verdict])
def test_events_are_immutable(kind):
    import dataclasses

    assert dataclasses.is_dataclass(kind) and kind.__dataclass_params__.frozen
