"""mlflow-monitor: training telemetry, promotion gates and alerts for MLflow.

Public API (kept small):

- :func:`autolog` -- one call to monitor every training run (PyTorch, Lightning, DDP, sklearn).
- :func:`log_metrics` / :func:`flush` -- non-blocking metric logging on the same pipeline.
- :func:`log_reference` -- log the reference data a later promotion is checked against.
- :func:`enable_gating` / :func:`disable_gating` -- gate Model Registry promotions in this client.
- :func:`log_predictions` -- log rows scored offline as production traffic of a model version
  (served traffic: ``mlflow-monitor serve``; other hosts: :mod:`mlflow_monitor.production`).
- :func:`log_labels` -- join delayed labels to the captured predictions by id: per-window performance.
"""

from __future__ import annotations

from typing import Any

from mlflow_monitor import redaction as _redaction

_redaction.guard_package_logs()  # every mlflow_monitor.* log record is redacted (stdlib only: cheap)

__version__ = "0.1.0"

__all__ = ["autolog", "log_metrics", "flush", "log_reference", "enable_gating", "disable_gating",
           "log_predictions", "log_labels", "__version__"]

_LAZY = {
    "autolog": "mlflow_monitor.autologging",
    "log_metrics": "mlflow_monitor.metrics",
    "flush": "mlflow_monitor.metrics",
    "log_reference": "mlflow_monitor.reference",
    "enable_gating": "mlflow_monitor.gate.registry_store",
    "disable_gating": "mlflow_monitor.gate.registry_store",
    "log_predictions": "mlflow_monitor.production.batch",
    "log_labels": "mlflow_monitor.production.labels",
}


def __getattr__(name: str) -> Any:
    # Lazy so `import mlflow_monitor` stays cheap (no torch/evidently import) and the
    # registry-store entry point can load inside `mlflow server` without the training stack.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mlflow_monitor' has no attribute {name!r}")
