"""Every autolog() knob is validated: a wrong type or value raises TypeError/ValueError naming
the knob, the value and what is allowed, and autolog's state is left as it was."""

from __future__ import annotations

import math

import pytest

import mlflow_monitor
from mlflow_monitor import autologging

BAD_KNOBS = [
    ("log_every_n_steps", 0, ValueError),
    ("log_every_n_steps", 2.0, TypeError),
    ("log_every_n_steps", True, TypeError),
    ("log_grad_norm", "no", TypeError),
    ("system_metrics", 1, TypeError),
    ("system_metrics_interval_s", 1e-6, ValueError),
    ("system_metrics_interval_s", math.nan, ValueError),
    ("system_metrics_interval_s", math.inf, ValueError),
    ("system_metrics_interval_s", -1, ValueError),
    ("system_metrics_interval_s", "1", TypeError),
    ("system_metrics_interval_s", True, TypeError),
    ("health", None, TypeError),
    ("notify", "yes", TypeError),
    ("notify", 1, TypeError),
    ("notify", {1: "x"}, ValueError),
    ("log_reference", "true", TypeError),
    ("sklearn", 0, TypeError),
    ("log_models", "False", TypeError),
    ("disable", "yes", TypeError),
    ("silent", 1, TypeError),
    ("optimizer_names", "generator", TypeError),
    ("optimizer_names", ["g", "g"], ValueError),
    ("optimizer_names", ["a/b"], ValueError),
    ("optimizer_names", [""], ValueError),
]


def _state_snapshot():
    state = autologging.current()
    return None if state is None else (id(state), state.config)


@pytest.mark.parametrize("knob, value, error", BAD_KNOBS, ids=[f"{k}={v!r}" for k, v, _ in BAD_KNOBS])
def test_a_bad_knob_is_refused_with_its_name_value_and_rule_and_nothing_changes(knob, value, error):
    mlflow_monitor.autolog(system_metrics=False, notify=False, silent=True, log_every_n_steps=2)
    before = _state_snapshot()
    with pytest.raises(error) as exc:
        mlflow_monitor.autolog(**{knob: value})
    message = str(exc.value)
    assert knob in message and repr(value)[:20] in message and autologging.KNOB_RULES[knob] in message
    assert _state_snapshot() == before  # same state object, same knobs


@pytest.mark.parametrize("knob, value, error", BAD_KNOBS[:3], ids=["first_call_0", "first_call_2.0", "first_call_True"])
def test_a_bad_knob_on_the_first_call_enables_nothing(knob, value, error):
    with pytest.raises(error):
        mlflow_monitor.autolog(**{knob: value})
    assert autologging.current() is None


def test_every_knob_of_autolog_has_a_rule():
    import inspect

    assert set(inspect.signature(mlflow_monitor.autolog).parameters) == set(autologging.KNOB_RULES)


@pytest.mark.parametrize("knob, value", [
    ("system_metrics_interval_s", 0.1), ("system_metrics_interval_s", 5), ("notify", None),
    ("notify", {"channel": "#ml"}), ("log_every_n_steps", 10), ("optimizer_names", ("d", "g")),
])
def test_good_knobs_are_taken(knob, value):
    mlflow_monitor.autolog(system_metrics=False, silent=True, **{"notify": False, knob: value})
    got = getattr(autologging.current().config, knob)
    assert got == value and (knob != "system_metrics_interval_s" or type(got) is float)
