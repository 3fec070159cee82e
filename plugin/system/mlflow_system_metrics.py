"""Stop MLflow's own system-metrics monitor on runs that our sampler covers."""

from __future__ import annotations

import logging
import threading

from mlflow_monitor.mlflow_compat import pop_mlflow_system_metrics_monitor

_logger = logging.getLogger(__name__)


def stop_mlflow_system_metrics(run_id: str, timeout_s: float = 5.0) -> bool:
    """Stop the ``SystemMetricsMonitor`` that ``mlflow.start_run(log_system_metrics=True)``
    (or ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``) started for ``run_id``.

    Returns True when MLflow had one for this run. MLflow's ``finish()`` joins its
    thread and flushes what it already collected; it can wait on the tracking
    server, so it runs on a helper thread and we wait at most ``timeout_s``. Its
    monitor takes no new sample once asked to stop, so it never overlaps with ours.
    """
    monitor = pop_mlflow_system_metrics_monitor(run_id)
    if monitor is None:
        return False

    def _finish() -> None:
        try:
            monitor.finish()
        except Exception:
            _logger.warning("mlflow-monitor: stopping MLflow's system metrics monitor failed", exc_info=True)

    finisher = threading.Thread(target=_finish, name="mlflow-monitor-stop-mlflow-sysmetrics", daemon=True)
    finisher.start()
    finisher.join(timeout_s)
    _logger.info(
        "mlflow-monitor: stopped MLflow's system metrics monitor for run %s (ours samples it)", run_id
    )
    return True
