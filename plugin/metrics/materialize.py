"""Turn buffer entries into points with float values, on the flusher thread.

Tensors are read here, not on the training thread: all tensors of one device are
stacked and copied in one transfer, so a CUDA run costs one sync per flush, not one
per point. A value that cannot be read as one number is logged as NaN.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Union

from mlflow_monitor.metrics.point import MetricPoint, PointGroup, PointRow

_logger = logging.getLogger(__name__)
_new = tuple.__new__

__all__ = ["materialize"]


def materialize(entries: Iterable[Union[PointRow, PointGroup]]) -> list[MetricPoint]:
    """Rows and groups as points, in order; every value a float, every step an int."""
    points: list[MetricPoint] = []
    unread: list[int] = []  # indexes of points whose value is not a float yet
    for entry in entries:
        if len(entry) == 4:  # a PointGroup
            run_id, values, step, ts_ms = entry  # type: ignore[misc]
            if type(step) is not int:
                step = int(step or 0)
            for key, value in values.items():
                if type(value) is not float:
                    unread.append(len(points))
                points.append(_new(MetricPoint, (run_id, key, value, step, ts_ms)))
        else:  # a PointRow
            point: MetricPoint = _new(MetricPoint, entry)
            if type(point.step) is not int:
                point = point._replace(step=int(point.step or 0))
            if type(point.value) is not float:
                unread.append(len(points))
            points.append(point)
    if unread:
        _read_values(points, unread)
    return points


def _read_values(points: list[MetricPoint], unread: list[int]) -> None:
    by_device: dict[Any, list[int]] = {}
    for i in unread:
        value = points[i].value
        if type(value) is not int and hasattr(value, "detach"):
            by_device.setdefault(getattr(value, "device", None), []).append(i)
        else:
            points[i] = _with_value(points[i], _number(value))
    if by_device:
        _read_tensors(points, by_device)


def _read_tensors(points: list[MetricPoint], by_device: dict[Any, list[int]]) -> None:
    import torch

    for idxs in by_device.values():
        try:
            stacked = [points[i].value.detach().reshape(()).float() for i in idxs]
            floats = torch.stack(stacked).cpu().tolist()
        except Exception:  # a non-scalar or odd tensor: read each on its own, NaN if unreadable
            floats = [_tensor_float(points[i].value) for i in idxs]
        for i, f in zip(idxs, floats):
            points[i] = _with_value(points[i], float(f))


def _with_value(p: MetricPoint, value: float) -> MetricPoint:
    return _new(MetricPoint, (p.run_id, p.key, value, p.step, p.timestamp_ms))


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _tensor_float(value: Any) -> float:
    try:
        return float(value.detach().reshape(()).float().cpu())
    except Exception:
        _logger.warning("mlflow-monitor: metric value %r is not a scalar; logged as NaN", type(value).__name__)
        return math.nan
