"""The drift verdict's stat tests, one declarative descriptor each.

As in Evidently's ``evidently.legacy.calculations.stattests.registry``, a test is a
:class:`StatTest`: its name (Evidently's), its kind, its default threshold, the function
that scores a column and the rule that turns a score into "drifted". Each function
mirrors one ``evidently.legacy.calculations.stattests`` module. Which test a column gets
is :mod:`mlflow_monitor.gate.drift.defaults`.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Callable, Literal, Optional

import numpy as np
from scipy import stats
from scipy.spatial import distance

from mlflow_monitor.gate.drift.merge import SortedMerge
from mlflow_monitor.reference import ColumnSample

__all__ = ["CHISQUARE", "JENSENSHANNON", "KS", "STAT_TESTS", "WASSERSTEIN", "Z", "StatTest"]

#: ``score(reference, current, merge)``; ``merge`` is given only to tests with ``uses_merge``.
ScoreFunction = Callable[[ColumnSample, ColumnSample, Optional[SortedMerge]], float]


@dataclasses.dataclass(frozen=True)
class StatTest:
    """One drift test: ``drifted_when(score, threshold)`` decides a column."""

    name: str  # Evidently's stattest name
    kind: Literal["distance", "p_value"]
    default_threshold: float
    score: ScoreFunction
    drifted_when: Callable[[float, float], bool]
    uses_merge: bool = False  # reads the SortedMerge the test choice already built

    def drifted(self, score: float, threshold: Optional[float] = None) -> bool:
        return bool(self.drifted_when(score, self.default_threshold if threshold is None else threshold))


# -- scores ------------------------------------------------------------------------------
def _wasserstein(ref: ColumnSample, cur: ColumnSample, merge: Optional[SortedMerge]) -> float:
    """``scipy.stats.wasserstein_distance`` from the merged samples (same arithmetic),
    divided by ``max(std(reference), 0.001)`` as Evidently's ``wasserstein`` test does."""
    assert merge is not None
    n, m = ref.n, cur.n
    cu = merge.from_reference[:-1]
    cv = np.arange(1, len(cu) + 1, dtype=cu.dtype)
    cv -= cu  # how many came from the m current values, up to here
    diff = cu / n
    diff -= cv / m
    np.abs(diff, out=diff)
    diff *= merge.deltas
    # numpy's pairwise sum, not BLAS: a multithreaded ddot stalls for milliseconds on a
    # busy machine, and the sum of non-negative terms is as exact either way
    w = float(np.add.reduce(diff))
    return w / max(ref.std(), 0.001)


def _frequencies(ref: dict, cur: dict) -> tuple[list, np.ndarray, np.ndarray]:
    keys = list(ref.keys() | cur.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.int64)
    c = np.array([cur.get(k, 0) for k in keys], dtype=np.int64)
    return keys, r, c


def _jensenshannon(ref: ColumnSample, cur: ColumnSample, merge: Optional[SortedMerge] = None) -> float:
    """Jensen-Shannon distance of the per-value frequencies (natural log)."""
    _, r, c = _frequencies(ref.counts(), cur.counts())
    return float(distance.jensenshannon(r / ref.n, c / cur.n))


def _chisquare(ref: ColumnSample, cur: ColumnSample, merge: Optional[SortedMerge] = None) -> float:
    """p-value of Pearson's chi-square test, expected counts from the reference shares."""
    _, r, c = _frequencies(ref.counts(), cur.counts())
    k_norm = cur.n / ref.n
    f_exp = [float(x) * k_norm for x in r.tolist()]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(c.tolist(), f_exp)[1])


def _z(ref: ColumnSample, cur: ColumnSample, merge: Optional[SortedMerge] = None) -> float:
    """p-value of the two-proportion z-test (at most two distinct values)."""
    rc, cc = ref.counts(), cur.counts()
    if len(rc) == 1 and len(cc) == 1 and next(iter(rc)) == next(iter(cc)):
        return 1.0
    key = next(iter(rc.keys() | cc.keys()))  # the p-value is the same for either key
    n1, n2 = ref.n, cur.n
    p1 = float(n1 - rc.get(key, 0)) / n1
    p2 = float(n2 - cc.get(key, 0)) / n2
    p = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(p * (1 - p) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - stats.norm.cdf(np.abs(z))))


def _ks(ref: ColumnSample, cur: ColumnSample, merge: Optional[SortedMerge] = None) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test."""
    return float(stats.ks_2samp(ref.sorted64(), cur.sorted64())[1])


# -- the registry --------------------------------------------------------------------------
WASSERSTEIN = StatTest("wasserstein", "distance", 0.1, _wasserstein, operator.ge, uses_merge=True)
JENSENSHANNON = StatTest("jensenshannon", "distance", 0.1, _jensenshannon, operator.ge)
KS = StatTest("ks", "p_value", 0.05, _ks, operator.le)
CHISQUARE = StatTest("chisquare", "p_value", 0.05, _chisquare, operator.lt)
Z = StatTest("z", "p_value", 0.05, _z, operator.lt)

#: Every test the verdict uses, by Evidently's name.
STAT_TESTS: dict[str, StatTest] = {t.name: t for t in (WASSERSTEIN, JENSENSHANNON, KS, CHISQUARE, Z)}
