"""The benchmarks' paired-rounds verdict (``benchmarks/paired_stats.py``): what a target
reads as MET, NOT MET or NOT RESOLVED decides what the performance notes claim."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from paired_stats import MET, NOT_MET, NOT_RESOLVED, Estimate, estimate, verdict  # noqa: E402


def test_estimate_is_the_median_with_an_interval_around_it_and_is_reproducible() -> None:
    rng = random.Random(0)
    values = [0.05 + rng.gauss(0, 0.01) for _ in range(40)]
    est = estimate(values)
    assert est.low <= est.median <= est.high
    assert est.rounds == 40
    assert abs(est.median - 0.05) < 0.01
    assert 0 < est.high - est.low < 0.02  # 40 rounds of sd 0.01: about +-0.004 around the median
    assert estimate(values) == est  # seeded: the same rounds give the same interval


def test_a_wider_spread_gives_a_wider_interval() -> None:
    rng = random.Random(1)
    narrow = estimate([rng.gauss(0, 0.01) for _ in range(30)])
    wide = estimate([rng.gauss(0, 0.1) for _ in range(30)])
    assert wide.high - wide.low > 3 * (narrow.high - narrow.low)


@pytest.mark.parametrize(("low", "high", "cost", "throughput"), [
    (0.02, 0.08, MET, NOT_MET),  # wholly under a 10% cost; wholly under a 10% throughput
    (0.05, 0.15, NOT_RESOLVED, NOT_RESOLVED),  # straddles 0.10
    (0.11, 0.20, NOT_MET, MET),  # wholly over 0.10
    (0.10, 0.10, MET, MET),  # on the target: within it both ways
])
def test_verdict_reads_the_whole_interval(low: float, high: float, cost: str, throughput: str) -> None:
    est = Estimate((low + high) / 2, low, high, 30)
    assert verdict(est, 0.10, higher_is_better=False) == cost
    assert verdict(est, 0.10, higher_is_better=True) == throughput


def test_no_rounds_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="at least one round"):
        estimate([])
