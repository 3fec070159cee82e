"""Keep MLflow's own system-metrics monitor off runs that our sampler covers."""

from __future__ import annotations

import logging
import threading

_logger = logging.getLogger(__name__)


def stop_mlflow_system_metrics(run_id: str, timeout_s: float = 5.0) -> bool:
    """Stop the ``SystemMetricsMonitor`` that ``mlflow.start_run(log_system_metrics=True)``
    (or ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING``) started for ``run_id``.

    Returns True when MLflow had one for this run. MLflow's ``finish()`` joins its
    thread and flushes what it already collected; it can wait on the tracking
    server, so it runs on a helper thread and we wait at most ``timeout_s``. Its
    monitor takes no new sample once asked to stop, so it never overlaps with ours.
    """
    try:
        from mlflow.tracking import fluent
    except Exception:  # MLflow not importable: nothing of MLflow's can be running
        return False
    monitors = getattr(fluent, "run_id_to_system_metrics_monitor", None)
    if not isinstance(monitors, dict):
        _logger.debug(
            "mlflow-monitor: this MLflow keeps no run_id_to_system_metrics_monitor; nothing to stop"
        )
        return False
    monitor = monitors.pop(run_id, None)
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
