"""Training health: NaN/Inf loss, divergence, plateaus, step-time regressions, GPU memory.

``enable()`` puts a :class:`HealthMonitor` on the metrics pipeline. Each rule is one
small class in its own file (``nan_loss.py``, ``divergence.py``, ...). When a rule
fires, a ``HealthAlert`` is published (Slack picks it up) and the run gets a tag
``mlflow_monitor.health.<rule>``, so the alert shows in the MLflow UI without Slack.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Iterable, Optional

from mlflow_monitor.health.divergence import Divergence
from mlflow_monitor.health.gpu_memory import GpuMemory
from mlflow_monitor.health.monitor import HealthMonitor, default_rules
from mlflow_monitor.health.nan_loss import NanLoss
from mlflow_monitor.health.plateau import Plateau
from mlflow_monitor.health.rule import Finding, HealthRule
from mlflow_monitor.health.step_time_regression import StepTimeRegression

__all__ = ["enable", "disable", "get_monitor", "HealthMonitor", "HealthRule", "Finding", "default_rules",
           "NanLoss", "Divergence", "Plateau", "StepTimeRegression", "GpuMemory"]

_logger = logging.getLogger(__name__)
_lock = threading.Lock()
_monitor: Optional[HealthMonitor] = None
_atexit_registered = False


def enable(rules: Optional[Iterable[HealthRule]] = None) -> HealthMonitor:
    """Watch the metrics pipeline with ``rules`` (default: :func:`default_rules`). Idempotent.

    Called again with no rules it keeps the running monitor (re-attaching it if the
    pipeline was replaced); with rules it replaces the monitor.
    """
    global _monitor, _atexit_registered
    with _lock:
        if not _atexit_registered:
            atexit.register(_close_tags_at_exit)
            _atexit_registered = True
        if _monitor is not None and rules is not None:
            _monitor.close(timeout=1.0)
            _monitor = None
        if _monitor is None:
            _monitor = HealthMonitor(rules)
        try:
            from mlflow_monitor.metrics import get_pipeline

            pipeline = get_pipeline()
            if _monitor.pipeline is not pipeline:
                _monitor.attach(pipeline)
        except Exception as exc:  # never break autolog over health checks
            _logger.warning("mlflow-monitor: health rules not attached to the metrics pipeline: %s", exc)
        return _monitor


def disable(timeout: float = 5.0) -> None:
    """Detach from the pipeline and write pending run tags (bounded by ``timeout``)."""
    global _monitor
    with _lock:
        monitor, _monitor = _monitor, None
    if monitor is not None:
        monitor.close(timeout)


def get_monitor() -> Optional[HealthMonitor]:
    return _monitor


def _close_tags_at_exit() -> None:
    """At exit: write pending run tags (bounded); what cannot be written goes to the dead-letter file.

    The monitor stays attached: the pipeline's own exit flush (which runs later) may
    still fire rules; their alerts are published and their tags dead-lettered.
    """
    monitor = _monitor
    if monitor is not None:
        try:
            monitor.tags.close(5.0)
        except Exception:  # never raise at interpreter exit
            pass
