"""In-process event bus: the seam between producers (autolog, health rules, the gate)
and consumers (Slack notifier, tests, user callbacks).

Producers call :func:`publish`. Subscribers are called synchronously on the
publisher's thread, so they must only enqueue (the Slack notifier does); an
exception in a subscriber is logged and never reaches the publisher.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Optional, Union

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class HealthAlert:
    """A training-health rule fired (NaN loss, divergence, plateau, ...)."""

    run_id: str
    rule: str  # e.g. "nan_loss", "divergence"
    message: str  # human readable, plain text (not escaped)
    metric: Optional[str] = None
    value: Optional[float] = None
    step: Optional[int] = None
    severity: str = "warning"  # "warning" | "critical"
    experiment_id: Optional[str] = None
    timestamp: float = dataclasses.field(default_factory=time.time)

    @property
    def dedup_key(self) -> str:
        return f"health:{self.run_id}:{self.rule}"


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """A monitored training run ended (status FINISHED or FAILED)."""

    run_id: str
    status: str  # "FINISHED" | "FAILED" | "KILLED"
    duration_s: float
    experiment_id: Optional[str] = None
    run_name: Optional[str] = None
    final_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    best_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    system_peaks: dict[str, float] = dataclasses.field(default_factory=dict)
    error: Optional[str] = None
    timestamp: float = dataclasses.field(default_factory=time.time)

    @property
    def dedup_key(self) -> str:
        return f"run:{self.run_id}:{self.status}"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The promotion gate decided on a model version."""

    model_name: str
    version: str
    target: str  # "alias:champion" | "stage:Production" | "new_version"
    passed: bool
    failed_rules: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # each: {"rule": str, "actual": float|None, "threshold": float|None, "message": str}
    drifted_columns: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # each: {"column": str, "score": float, "method": str, "threshold": float}
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    champion_version: Optional[str] = None
    champion_delta: dict[str, float] = dataclasses.field(default_factory=dict)
    run_id: Optional[str] = None  # candidate's source run (holds the reports)
    report_path: Optional[str] = None  # artifact path of the report folder in that run
    overridden: bool = False
    override_reason: Optional[str] = None
    user: Optional[str] = None
    notify: Optional[dict[str, Any]] = None  # the recipe's `notify:` section, if any
    timestamp: float = dataclasses.field(default_factory=time.time)
    # "owned", or "self-reported: <inputs the promoter could write>"; None when not evaluated
    evidence: Optional[str] = None

    @property
    def dedup_key(self) -> str:
        return f"verdict:{self.model_name}:{self.version}:{self.target}:{self.timestamp}"


@dataclasses.dataclass(frozen=True)
class ProductionAlert:
    """Production monitoring raised an alert on a closed window of a served version
    (``drift``, ``performance``, ``latency`` or ``errors``); ``run_id`` is the version's
    monitoring run."""

    model_name: str
    version: str
    alert: str  # "drift" | "performance" | "latency" | "errors"
    window_id: str  # e.g. "20261201T102000Z-5m"
    message: str  # human readable, plain text (not escaped)
    run_id: str
    experiment_id: Optional[str] = None
    metric: Optional[str] = None
    value: Optional[float] = None
    threshold: Optional[float] = None
    severity: str = "warning"  # "warning" | "critical"
    details: list[str] = dataclasses.field(default_factory=list)  # e.g. the drifted columns
    timestamp: float = dataclasses.field(default_factory=time.time)

    @property
    def dedup_key(self) -> str:
        return f"prod:{self.model_name}:{self.version}:{self.alert}:{self.window_id}"


Event = Union[HealthAlert, RunSummary, Verdict, ProductionAlert]
Subscriber = Callable[[Event], None]

_lock = threading.Lock()
_subscribers: list[tuple[Subscriber, tuple[type, ...]]] = []


def subscribe(callback: Subscriber, *kinds: type) -> Callable[[], None]:
    """Register ``callback`` for events of ``kinds`` (all kinds if none given).

    Returns a function that unsubscribes it.
    """
    entry = (callback, tuple(kinds) or (HealthAlert, RunSummary, Verdict, ProductionAlert))
    with _lock:
        _subscribers.append(entry)

    def _unsubscribe() -> None:
        with _lock:
            if entry in _subscribers:
                _subscribers.remove(entry)

    return _unsubscribe


def publish(event: Event) -> None:
    """Deliver ``event`` to every matching subscriber; never raises."""
    with _lock:
        targets = [cb for cb, kinds in _subscribers if isinstance(event, kinds)]
    for cb in targets:
        try:
            cb(event)
        except Exception:  # a consumer must never break a producer
            _logger.exception("mlflow-monitor: event subscriber %r failed", cb)


# ------------------------------------------------------------------------- notifiers --
# Services (the gate inside `mlflow server`, autolog) turn notifications on without
# importing any integration: notifiers register under this entry-point group, e.g.
#   [project.entry-points."mlflow_monitor.notifiers"]
#   slack = "mlflow_monitor.integrations.slack:enable"
# Each target is `enable(config=None) -> object | None` (None: not configured) and its
# module has `disable(timeout=None)`. This keeps the dependency rule: integrations
# depend on services and core, never the other way round.

NOTIFIER_GROUP = "mlflow_monitor.notifiers"


def _notifier_entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return sorted(entry_points(group=NOTIFIER_GROUP), key=lambda ep: ep.name)


def enable_notifiers(config: Any = None) -> list[str]:
    """Enable every installed notifier with ``config``; the names of those now running.

    Never raises: a notifier that fails to import or start is logged and skipped.
    """
    running = []
    for ep in _notifier_entry_points():
        try:
            enable = ep.load()
            if (enable() if config is None else enable(config)) is not None:
                running.append(ep.name)
        except Exception as exc:
            _logger.warning("mlflow-monitor: notifier %r not enabled: %s", ep.name, type(exc).__name__)
    return running


def disable_notifiers(timeout: Optional[float] = None) -> None:
    """Flush and stop every installed notifier (bounded by ``timeout`` each). Never raises."""
    import importlib

    for ep in _notifier_entry_points():
        try:
            module = importlib.import_module(ep.module)
            module.disable(timeout)
        except Exception as exc:
            _logger.warning("mlflow-monitor: notifier %r not disabled: %s", ep.name, type(exc).__name__)
