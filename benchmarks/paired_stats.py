"""Paired rounds on a noisy machine: the median of per-round figures, its bootstrap
confidence interval, and a three-way verdict against a target.

The benchmarks that compare our code with an anchor (``training_overhead.py``,
``serving_overhead.py``) run the two back to back in many short rounds, so a drift of the
shared machine's speed hits both alike, and take one figure per round (a ratio, or a
difference). A single run of the same code against itself (an A-A arm) gives the
benchmark's own resolution. With the interval, a target reads:

- ``MET``: the whole 95% interval is on the right side of the target;
- ``NOT MET``: the whole interval is on the wrong side;
- ``NOT RESOLVED``: the interval straddles the target; this run cannot tell.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["Estimate", "estimate", "verdict"]

MET, NOT_MET, NOT_RESOLVED = "MET", "NOT MET", "NOT RESOLVED"


class Estimate(NamedTuple):
    """The median of per-round figures and its 95% bootstrap interval."""

    median: float
    low: float
    high: float
    rounds: int


def estimate(values: Sequence[float], *, resamples: int = 4000, seed: int = 1) -> Estimate:
    """Median of ``values`` with a percentile-bootstrap 95% interval (seeded: the same
    values give the same interval)."""
    data = list(values)
    if not data:
        raise ValueError("estimate() needs at least one round, got none")
    rng = random.Random(seed)
    n = len(data)
    medians = sorted(statistics.median(rng.choices(data, k=n)) for _ in range(resamples))
    return Estimate(statistics.median(data), medians[int(0.025 * resamples)],
                    medians[min(resamples - 1, int(0.975 * resamples))], n)


def verdict(est: Estimate, target: float, *, higher_is_better: bool) -> str:
    """``MET``, ``NOT MET`` or ``NOT RESOLVED`` for ``est`` against ``target`` (see the
    module docstring). ``higher_is_better``: a throughput ratio; else a cost or a delay."""
    if higher_is_better:
        all_good, any_good = est.low >= target, est.high >= target
    else:
        all_good, any_good = est.high <= target, est.low <= target
    if all_good:
        return MET
    if not any_good:
        return NOT_MET
    return NOT_RESOLVED
