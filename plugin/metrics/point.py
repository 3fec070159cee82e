"""The one shape of a metric point, and the entries the pipeline's buffer holds.

A :class:`MetricPoint` is what the buffer, the spool, the sender and observers share:
``(run_id, key, value, step, timestamp_ms)``, with the timestamp in integer
milliseconds everywhere. Until the flusher materialises it, ``value`` may still be a
0-dim tensor (or another number); after that it is a float.

The buffer holds four kinds of entry:

- a :data:`PointRow`, one point: ``(run_id, key, value, step, timestamp_ms)``, a
  :class:`MetricPoint`'s fields in its order, as a plain tuple;
- a :data:`PointGroup`, several keys of one run sharing a step and a timestamp:
  ``(run_id, {key: value}, step, timestamp_ms)``, a plain 4-tuple;
- a :data:`~mlflow_monitor.metrics.step_row.StepRow`, one training step as the facts the
  torch hooks observed (9 fields; its metrics are derived when it is drained);
- a :class:`FlushMarker`.

The flusher tells them apart by type, then by length (5 fields: a row, 4: a group, 9: a
step row), and turns them into :class:`MetricPoint` when it drains them
(:func:`~mlflow_monitor.metrics.materialize.materialize`). Rows and groups are plain
tuples because that keeps ``log_metrics`` at its cost (``benchmarks/hot_path.py``): a
NamedTuple costs ~0.1 us more to build, and the garbage collector keeps tracking it while
it waits in the buffer (it untracks a plain tuple of strings, numbers and a flat dict),
so a full buffer triggers collections over the whole heap. Measured: NamedTuple entries
made a 1-scalar ``log_metrics`` ~45% slower and a 10-scalar one ~10% slower.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, NamedTuple, Tuple

__all__ = ["FlushMarker", "MetricPoint", "PointGroup", "PointRow", "now_ms"]


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


#: One point on the buffer: ``(run_id, key, value, step, timestamp_ms)``, a MetricPoint's fields.
PointRow = Tuple[str, str, Any, int, int]

#: Several points of one run on the buffer: ``(run_id, {key: value}, step, timestamp_ms)``.
PointGroup = Tuple[str, Dict[str, Any], int, int]


class FlushMarker(NamedTuple):
    """Set ``event`` once every entry queued before this marker is handled."""

    event: threading.Event


_time_ns = time.time_ns


def now_ms() -> int:
    """Wall-clock time in integer milliseconds (MLflow's metric timestamp unit)."""
    return _time_ns() // 1_000_000
