"""The public metric-logging API: :func:`log_metrics`, :func:`flush`, and ``current_step``.

``log_metrics`` validates on the caller's thread (so a bad name fails where it is
logged), then queues one buffer entry; everything else happens on the flusher thread.

``current_step`` is the optimizer step the training integrations keep up to date (they
set ``mlflow_monitor.metrics.api.current_step`` at each step); ``log_metrics(step=None)``
uses it.
"""

from __future__ import annotations

import collections.abc
import numbers
import time
from typing import Any, Mapping, Optional

from mlflow_monitor.metrics import pipeline as pipelines
from mlflow_monitor.metrics.materialize import read_cpu_scalars
from mlflow_monitor.metrics.pipeline import get_pipeline
from mlflow_monitor.mlflow_compat import validate_metric_name
from mlflow_monitor.metrics.run_context import active_run_id, ensure_run_id

__all__ = ["current_step", "flush", "log_metrics"]

current_step = 0  # integrations keep this at the optimizer step; log_metrics(step=None) uses it
_known_keys: set[str] = set()
_time_ns = time.time_ns


def log_metrics(metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
    """Log ``{name: value}`` to the active run without blocking (the autolog pipeline).

    Values may be numbers or 0-dim tensors: a CPU tensor is read at once (~0.4 us, no
    device to wait for), an accelerator's later, off the caller's thread.
    ``step`` defaults to the current optimizer step under autolog, else 0. Starts a run
    when none is active, like ``mlflow.log_metric``. Invalid names or values raise
    ``ValueError``/``TypeError`` here, and nothing is logged.
    """
    if type(metrics) is not dict:
        if not isinstance(metrics, collections.abc.Mapping):
            raise TypeError(f"log_metrics expects a mapping of name -> number, got {type(metrics).__name__}")
        metrics = dict(metrics)
    if step is None:
        step = current_step
    elif type(step) is not int:
        step = _check_step(step)
    # Queue a PointRow or a PointGroup (plain tuples; see mlflow_monitor.metrics.point).
    if len(metrics) == 1:  # the common case: one point row, no dict copy to keep alive
        for key in metrics:
            value = metrics[key]
            t = type(value)
            if key not in _known_keys or (t is not float and t is not int):
                _validate(metrics)
                if getattr(value, "is_cpu", False):  # read now: see read_cpu_scalars
                    value = read_cpu_scalars({key: value})[key]
            (pipelines.instance or get_pipeline()).push(
                (active_run_id() or ensure_run_id(), key, value, step, _time_ns() // 1_000_000))
        return
    if not _known_keys.issuperset(metrics):
        _validate(metrics)
    values = metrics
    for value in metrics.values():
        t = type(value)
        if t is not float and t is not int:
            _validate(metrics)
            values = read_cpu_scalars(metrics)  # a new dict, CPU tensors read now (see there)
            break
    (pipelines.instance or get_pipeline()).push(
        (active_run_id() or ensure_run_id(), values.copy() if values is metrics else values, step,
         _time_ns() // 1_000_000))


def flush(timeout: float = 10.0) -> bool:
    """Block until logged metrics are in the tracking store (True) or ``timeout`` passes."""
    return get_pipeline().flush(timeout)


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise TypeError(f"step must be an int, got {type(step).__name__}")
    return int(step.__index__())


def _validate(metrics: Mapping[str, Any]) -> None:
    """Check names (MLflow's rule) and values; raise before anything is queued."""
    for key, value in metrics.items():
        if key not in _known_keys:
            if not isinstance(key, str):
                raise TypeError(f"metric names must be str, got {type(key).__name__} ({key!r})")
            try:
                validate_metric_name(key)
            except Exception as exc:
                raise ValueError(f"invalid metric name {key!r}: {exc}") from None
        _validate_value(key, value)
    _known_keys.update(metrics)


def _validate_value(key: str, value: Any) -> None:
    if isinstance(value, bool) or isinstance(value, (float, int)):
        return
    if hasattr(value, "detach"):  # torch tensor: must hold exactly one number
        if value.numel() != 1:
            raise ValueError(f"metric {key!r}: expected a scalar tensor, got shape {tuple(value.shape)}")
        return
    try:  # numpy scalars and other numbers; an object whose attributes raise is not one
        if isinstance(value, numbers.Real) or (hasattr(value, "item") and getattr(value, "size", 2) == 1):
            return
    except Exception:
        pass
    raise TypeError(f"metric {key!r}: expected a number, got {type(value).__name__} ({value!r:.60})")
