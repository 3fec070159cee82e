"""The one shape of a metric point, and the entries the pipeline's buffer holds.

A :class:`MetricPoint` is what the buffer, the spool, the sender and observers share:
``(run_id, key, value, step, timestamp_ms)``, with the timestamp in integer
milliseconds everywhere. Until the flusher materialises it, ``value`` may still be a
0-dim tensor (or another number); after that it is a float.

The buffer holds three kinds of entry, told apart by their type on the flusher thread:
a :class:`MetricPoint`, a :class:`PointGroup` (several keys sharing a step and a
timestamp) and a :class:`FlushMarker`.

The hot path builds entries with ``tuple.__new__(MetricPoint, (...))``: the same object
as ``MetricPoint(...)``, at about half the cost of the generated ``__new__``.
"""

from __future__ import annotations

import threading
import time
from typing import Any, NamedTuple

__all__ = ["FlushMarker", "MetricPoint", "PointGroup", "now_ms"]


class MetricPoint(NamedTuple):
    """One value of one metric of one run."""

    run_id: str
    key: str
    value: Any  # float once materialised; a 0-dim tensor or other number before
    step: int
    timestamp_ms: int

    def to_row(self) -> list[Any]:
        """The point as a JSON row of the spool and ``rejected.jsonl``.

        The order, ``[run_id, key, value, timestamp_ms, step]``, is the on-disk format of
        version 0.1, kept so that spool files written by earlier processes still replay.
        """
        return [self.run_id, self.key, self.value, self.timestamp_ms, self.step]

    @classmethod
    def from_row(cls, row: Any) -> "MetricPoint":
        """Inverse of :meth:`to_row`; raises ValueError when ``row`` is not such a row."""
        try:
            run_id, key, value, timestamp_ms, step = row
        except (TypeError, ValueError):
            raise ValueError(f"a spool row has 5 fields [run_id, key, value, timestamp_ms, step], got {row!r:.80}")
        if not isinstance(run_id, str) or not isinstance(key, str):
            raise ValueError(f"a spool row starts with two strings (run_id, key), got {row!r:.80}")
        return cls(run_id, key, value, int(step), int(timestamp_ms))


class PointGroup(NamedTuple):
    """Several metrics of one run that share a step and a timestamp (one buffer entry)."""

    run_id: str
    values: dict[str, Any]
    step: int
    timestamp_ms: int


class FlushMarker(NamedTuple):
    """Set ``event`` once every entry queued before this marker is handled."""

    event: threading.Event


_time_ns = time.time_ns


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (MLflow's metric timestamp unit)."""
    return _time_ns() // 1_000_000
