"""HealthMonitor: runs the health rules on every metric point the pipeline flushes.

It is a pipeline observer (``fn(point: MetricPoint)`` on the flusher thread, with
plain floats). When a rule fires it publishes a ``HealthAlert`` and
queues a run tag ``mlflow_monitor.health.<rule>`` (written off the flusher thread).
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Callable, Iterable, Optional

from mlflow_monitor import events
from mlflow_monitor.events import HealthAlert
from mlflow_monitor.health.divergence import Divergence
from mlflow_monitor.health.gpu_memory import GpuMemory
from mlflow_monitor.health.nan_loss import NanLoss
from mlflow_monitor.health.plateau import Plateau
from mlflow_monitor.health.rule import HealthRule
from mlflow_monitor.health.run_tags import RunTagWriter
from mlflow_monitor.health.step_time_regression import StepTimeRegression

_logger = logging.getLogger(__name__)

TAG_PREFIX = "mlflow_monitor.health."
MAX_RUNS = 64  # per-run rule state kept for the most recently used runs


def default_rules() -> list[HealthRule]:
    return [NanLoss(), Divergence(), Plateau(), StepTimeRegression(), GpuMemory()]


class _RunRules:
    """One run's rule instances, plus a cache of which rules watch which key."""

    def __init__(self, prototypes: Iterable[HealthRule]) -> None:
        self.rules = [r.fresh() for r in prototypes]
        self.by_key: dict[str, list[HealthRule]] = {}

    def for_key(self, key: str) -> list[HealthRule]:
        found = self.by_key.get(key)
        if found is None:
            found = self.by_key[key] = [r for r in self.rules if r.watches(key)]
        return found


class HealthMonitor:
    """Feeds metric points to per-run copies of ``rules``; publishes and tags what fires."""

    def __init__(self, rules: Optional[Iterable[HealthRule]] = None,
                 publish: Callable[[Any], None] = events.publish,
                 tags: Optional[RunTagWriter] = None) -> None:
        self.rules = list(rules) if rules is not None else default_rules()
        self._publish = publish
        self.tags = tags or RunTagWriter()
        self._runs: collections.OrderedDict[str, _RunRules] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._remove_observer: Optional[Callable[[], None]] = None
        self.pipeline: Any = None

    def observe(self, run_id: str, key: str, value: float, step: Optional[int], ts_ms: Optional[int] = None) -> None:
        """Pipeline observer: cheap, never raises."""
        try:
            for rule in self._rules(run_id).for_key(key):
                finding = rule.observe(key, float(value), step)
                if finding is not None:
                    self._fire(run_id, rule, finding)
        except Exception:
            _logger.exception("mlflow-monitor: health rules failed on %s", key)

    def _observe_points(self, points: list[Any]) -> None:
        """Batch observer: :meth:`observe` for each point of one delivery."""
        observe = self.observe
        for run_id, key, value, step, _ts in points:
            observe(run_id, key, value, step)

    def attach(self, pipeline: Any) -> None:
        self.detach()
        self._remove_observer = pipeline.add_observer(self._observe_points, batch=True)
        self.pipeline = pipeline

    def detach(self) -> None:
        if self._remove_observer is not None:
            try:
                self._remove_observer()
            finally:
                self._remove_observer, self.pipeline = None, None

    def close(self, timeout: float = 5.0) -> None:
        self.detach()
        self.tags.close(timeout)

    def _rules(self, run_id: str) -> _RunRules:
        with self._lock:
            state = self._runs.get(run_id)
            if state is not None:
                self._runs.move_to_end(run_id)  # evict the least recently used run, not the oldest
            else:
                state = self._runs[run_id] = _RunRules(self.rules)
                while len(self._runs) > MAX_RUNS:
                    self._runs.popitem(last=False)
            return state

    def _fire(self, run_id: str, rule: HealthRule, finding: Any) -> None:
        self._publish(HealthAlert(run_id=run_id, rule=rule.name, message=finding.message, metric=finding.metric,
                                  value=finding.value, step=finding.step, severity=finding.severity))
        self.tags.tag(run_id, TAG_PREFIX + rule.name, finding.message)
