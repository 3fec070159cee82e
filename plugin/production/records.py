"""What the request thread hands to the aggregator: one plain tuple per call."""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Sequence

__all__ = ["BATCH", "ERROR", "REQUEST", "CaptureRecord"]

REQUEST = 0  # a served request with inputs and predictions
ERROR = 1  # a request that failed (no rows)
BATCH = 2  # rows from a batch scoring job (no request, no latency)


class CaptureRecord(NamedTuple):
    """Field order of the tuples in the capture buffer (built as plain tuples on the
    request thread, read with this shape on the aggregator thread)."""

    kind: int
    timestamp: float
    inputs: Any
    predictions: Any
    latency_ms: float
    status: int
    ids: Optional[Sequence[str]]
