"""``LatencyHistogram``: request latencies in fixed logarithmic buckets (mergeable by adding).

Bucket ``i`` holds latencies in ``[LOW_MS * G**(i-1), LOW_MS * G**i)`` with
``G = 10 ** (1 / BUCKETS_PER_DECADE)``; bucket 0 holds everything below ``LOW_MS``.
Every process uses the same edges, so histograms from any worker or replica add up
exactly. A quantile is read as the geometric middle of its bucket: within about 3 % of
the true value (half a bucket's width), clamped to the exact min and max.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["BUCKETS_PER_DECADE", "LOW_MS", "LatencyHistogram"]

LOW_MS = 0.01
BUCKETS_PER_DECADE = 40
_LOG_G = math.log(10) / BUCKETS_PER_DECADE


def bucket_of(ms: float) -> int:
    if not ms > LOW_MS:  # also NaN and negatives
        return 0
    return int(math.floor(math.log(ms / LOW_MS) / _LOG_G)) + 1


def bucket_middle(index: int) -> float:
    if index <= 0:
        return LOW_MS
    return LOW_MS * math.exp((index - 0.5) * _LOG_G)


class LatencyHistogram:
    """Counts per log bucket plus exact count, sum, min and max (milliseconds)."""

    __slots__ = ("buckets", "count", "sum", "min", "max")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, ms: float, n: int = 1) -> None:
        ms = float(ms)
        if not math.isfinite(ms) or ms < 0:
            ms = 0.0
        b = bucket_of(ms)
        self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += n
        self.sum += ms * n
        self.min = min(self.min, ms)
        self.max = max(self.max, ms)

    def merge(self, other: "LatencyHistogram") -> None:
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) in ms; NaN when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        if not self.count:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                return min(max(bucket_middle(b), self.min), self.max)
        return self.max

    def to_dict(self) -> dict[str, Any]:
        return {"buckets": [[b, n] for b, n in sorted(self.buckets.items())], "count": self.count,
                "sum": self.sum, "min": self.min if self.count else None, "max": self.max if self.count else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LatencyHistogram":
        out = cls()
        out.buckets = {int(b): int(n) for b, n in data["buckets"]}
        out.count = int(data["count"])
        out.sum = float(data["sum"])
        out.min = math.inf if data.get("min") is None else float(data["min"])
        out.max = -math.inf if data.get("max") is None else float(data["max"])
        return out
