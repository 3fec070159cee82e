"""Turn buffer entries into points with float values, on the flusher thread.

Tensors are read here, not on the training thread: all tensors of one accelerator are
stacked and copied in one transfer, so a CUDA run costs one sync per flush, not one
per point; CPU tensors are read with ``.item()`` (no transfer to save, ~3x cheaper).

This is also where a point that can only fail on materialisation is caught, alone: a
value that is not one finite-or-not float (``10**400`` overflows ``float()``, a string,
a tensor of several numbers), or a step or timestamp that MLflow's int64 columns cannot
hold (``step=2**70``, a NaN step). Such a point is handed to ``rejected`` with the
reason instead of being stored, and its neighbours go on as if it was never logged.
NaN and +/-Inf *values* are not rejected: MLflow stores them.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping, Optional, Union

from mlflow_monitor.metrics.point import MetricPoint, PointGroup, PointRow
from mlflow_monitor.metrics.step_row import StepRow, step_row_metrics

_logger = logging.getLogger(__name__)
_new = tuple.__new__

__all__ = ["INT64_MAX", "INT64_MIN", "Rejected", "materialize", "read_cpu_scalars"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # MLflow's step and timestamp columns (BigInteger)

#: A point set aside, with why: ``(point with its raw value, reason)``.
Rejected = tuple[MetricPoint, str]


def materialize(entries: Iterable[Union[PointRow, PointGroup, StepRow]],
                rejected: Optional[list[Rejected]] = None) -> list[MetricPoint]:
    """Rows, groups and step rows as points, in order; every value a float, every step an int.

    Points that cannot be stored (see the module doc) are left out and appended to
    ``rejected`` (dropped with a warning when it is None).
    """
    points: list[MetricPoint] = []
    unread: list[int] = []  # indexes of points whose value is not a float yet
    bad: list[Rejected] = [] if rejected is None else rejected
    bad_before = len(bad)
    for entry in entries:
        size = len(entry)
        if size != 5:  # a PointGroup, or a StepRow (the training hooks' step, derived here)
            if size == 4:
                run_id, values, step, ts_ms = entry  # type: ignore[misc]
                items: Iterable[tuple[str, Any]] = values.items()
            else:
                run_id, step, ts_ms = entry[0], entry[1], entry[2]
                items = step_row_metrics(entry)  # type: ignore[arg-type]
            if type(step) is not int or not INT64_MIN <= step <= INT64_MAX or not INT64_MIN <= ts_ms <= INT64_MAX:
                reason = _bad_step_or_ts(step, ts_ms)
                if reason is not None:
                    bad.extend((_new(MetricPoint, (run_id, k, v, step, ts_ms)), reason) for k, v in items)
                    continue
                step = _as_int(step)
            for key, value in items:
                if type(value) is not float:
                    unread.append(len(points))
                points.append(_new(MetricPoint, (run_id, key, value, step, ts_ms)))
        else:  # a PointRow
            point: MetricPoint = _new(MetricPoint, entry)
            step, ts_ms = point.step, point.timestamp_ms
            if type(step) is not int or not INT64_MIN <= step <= INT64_MAX or not INT64_MIN <= ts_ms <= INT64_MAX:
                reason = _bad_step_or_ts(step, ts_ms)
                if reason is not None:
                    bad.append((point, reason))
                    continue
                point = point._replace(step=_as_int(step))
            if type(point.value) is not float:
                unread.append(len(points))
            points.append(point)
    if unread:
        points = _read_values(points, unread, bad)
    if rejected is None and len(bad) > bad_before:
        _logger.warning("mlflow-monitor: %d metric point(s) cannot be stored and were dropped (first: %r: %s)",
                        len(bad) - bad_before, bad[bad_before][0].key, bad[bad_before][1])
    return points


def read_cpu_scalars(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict of ``metrics`` with each one-number CPU tensor replaced by its float (the
    caller's thread, before the values are queued).

    A CPU tensor's value is ready, there is no device to wait for, and ``.item()`` costs
    ~0.4 us. Queuing the tensor instead keeps garbage-collected objects (the tensor, and the
    dict and tuple that hold it) alive in the buffer for up to a flush interval: they
    survive into the oldest generation, and every ~100k of them set off a full collection
    of the user's heap (~0.3-0.4 s of CPU with torch and MLflow loaded, on the training
    thread as often as not). The dict is built afresh, not copied: holding only strings and
    numbers it is then not tracked by the collector at all (a copy of a dict that held a
    tensor stays tracked), and the buffer entry holding it is untracked at the next young
    collection. Measured (``benchmarks/hot_path.py``): ~1.9 us of collection per point
    before. Tensors on an accelerator stay tensors (read on the flusher thread, one
    transfer per device). The value read is the one :func:`materialize` would read
    (``float(t.item())``); a tensor that is not one number is left for the flusher, which
    sets it aside alone.
    """
    out = {}
    for key, value in metrics.items():
        if type(value) is not float and type(value) is not int and getattr(value, "is_cpu", False):
            try:
                value = float(value.item())
            except Exception:
                pass
        out[key] = value
    return out


def _as_int(step: Any) -> int:
    return 0 if step is None else int(step)


def _bad_step_or_ts(step: Any, ts_ms: Any) -> Optional[str]:
    """Why this step or timestamp cannot be stored, or None when it can (after ``int()``)."""
    if step is not None:
        if isinstance(step, (str, bytes)):
            return f"step {step!r:.40} is not an integer"
        if isinstance(step, bool) or not hasattr(step, "__index__"):
            try:  # a float or 0-dim tensor holding a whole number is accepted, as before
                as_float = float(step)
            except (TypeError, ValueError, OverflowError):
                return f"step {step!r:.40} is not an integer"
            if as_float != as_float or as_float in (float("inf"), float("-inf")) or as_float != int(as_float):
                return f"step {step!r:.40} is not a finite integer"
            step = int(as_float)
        else:
            step = step.__index__()
        if not INT64_MIN <= step <= INT64_MAX:
            return f"step {step} is out of range (MLflow stores steps as 64-bit integers: {INT64_MIN}..{INT64_MAX})"
    if type(ts_ms) is not int or not INT64_MIN <= ts_ms <= INT64_MAX:
        return f"timestamp {ts_ms!r:.40} is not a 64-bit integer of milliseconds"
    return None


def _read_values(points: list[MetricPoint], unread: list[int], bad: list[Rejected]) -> list[MetricPoint]:
    by_device: dict[Any, list[int]] = {}
    dropped: set[int] = set()
    for i in unread:
        value = points[i].value
        if type(value) is not int and hasattr(value, "detach"):
            by_device.setdefault(getattr(value, "device", None), []).append(i)
            continue
        try:
            points[i] = _with_value(points[i], float(value))
        except (TypeError, ValueError, OverflowError) as exc:
            bad.append((points[i], _value_reason(value, exc)))
            dropped.add(i)
    if by_device:
        _read_tensors(points, by_device, bad, dropped)
    if dropped:
        return [p for i, p in enumerate(points) if i not in dropped]
    return points


def _read_tensors(points: list[MetricPoint], by_device: dict[Any, list[int]], bad: list[Rejected],
                  dropped: set[int]) -> None:
    import torch

    for device, idxs in by_device.items():
        try:
            if getattr(device, "type", None) == "cpu":  # no transfer to batch: .item() is the cheapest read
                floats = [float(points[i].value.item()) for i in idxs]
            else:
                stacked = [points[i].value.detach().reshape(()).float() for i in idxs]
                floats = torch.stack(stacked).cpu().tolist()
        except Exception:  # a non-scalar or odd tensor: read each on its own
            floats = [_tensor_float(points[i].value) for i in idxs]
        for i, f in zip(idxs, floats):
            if isinstance(f, str):
                bad.append((points[i], f))
                dropped.add(i)
            else:
                points[i] = _with_value(points[i], float(f))


def _with_value(p: MetricPoint, value: float) -> MetricPoint:
    return _new(MetricPoint, (p.run_id, p.key, value, p.step, p.timestamp_ms))


def _value_reason(value: Any, exc: BaseException) -> str:
    if isinstance(exc, OverflowError) and isinstance(value, int):
        return f"value {'-' if value < 0 else ''}~1e{int(math.log10(abs(value)))} is out of the range of a 64-bit float"
    if isinstance(exc, OverflowError):
        return f"value {value!r:.60} is out of the range of a 64-bit float"
    return f"value {value!r:.60} ({type(value).__name__}) is not a number"


def _tensor_float(value: Any) -> Union[float, str]:
    """The tensor's one number, or the reason it has none."""
    try:
        return float(value.detach().reshape(()).float().cpu())
    except Exception:
        shape = tuple(getattr(value, "shape", ()))
        return f"value is a {type(value).__name__} of shape {shape}, not one number"
