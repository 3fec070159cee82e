"""``NumericStats``: count, missing, min, max, sum and sum of squares of a numeric column;
merged by adding (exact for counts, min and max; float addition for the sums)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["NumericStats"]


class NumericStats:
    """Running statistics of the finite values of one numeric column."""

    __slots__ = ("count", "nonfinite", "min", "max", "sum", "sum_sq")

    def __init__(self) -> None:
        self.count = 0  # finite values
        self.nonfinite = 0  # +/-inf values (NaN counts as missing in the column state)
        self.min = math.inf
        self.max = -math.inf
        self.sum = 0.0
        self.sum_sq = 0.0

    def add(self, values: np.ndarray) -> None:
        """Fold an array of float64 values with NaN already removed."""
        if values.size == 0:
            return
        finite = np.isfinite(values)
        if not finite.all():
            self.nonfinite += int(values.size - finite.sum())
            values = values[finite]
            if values.size == 0:
                return
        self.count += int(values.size)
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))
        self.sum += float(values.sum())
        self.sum_sq += float(np.dot(values, values))

    @staticmethod
    def add_block(stats: "list[NumericStats]", block: np.ndarray) -> None:
        """Fold a 2-D float64 block (rows x columns, NaN = missing) into one
        :class:`NumericStats` per column, in a few vectorised passes."""
        if block.size == 0:
            return
        present = ~np.isnan(block)
        finite = np.isfinite(block)
        n_present = present.sum(axis=0)
        n_finite = finite.sum(axis=0)
        clean = np.where(finite, block, 0.0)
        sums = clean.sum(axis=0)
        sq = np.einsum("ij,ij->j", clean, clean)
        lo = np.where(finite, block, np.inf).min(axis=0)
        hi = np.where(finite, block, -np.inf).max(axis=0)
        for j, st in enumerate(stats):
            st.nonfinite += int(n_present[j] - n_finite[j])
            if n_finite[j]:
                st.count += int(n_finite[j])
                st.min = min(st.min, float(lo[j]))
                st.max = max(st.max, float(hi[j]))
                st.sum += float(sums[j])
                st.sum_sq += float(sq[j])

    def merge(self, other: "NumericStats") -> None:
        self.count += other.count
        self.nonfinite += other.nonfinite
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.sum += other.sum
        self.sum_sq += other.sum_sq

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        """Population standard deviation (``np.std``), from the two sums."""
        if not self.count:
            return math.nan
        var = self.sum_sq / self.count - self.mean ** 2
        return math.sqrt(max(var, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "nonfinite": self.nonfinite,
                "min": self.min if self.count else None, "max": self.max if self.count else None,
                "sum": self.sum, "sum_sq": self.sum_sq}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "NumericStats":
        out = cls()
        out.count = int(data["count"])
        out.nonfinite = int(data.get("nonfinite", 0))
        out.min = math.inf if data.get("min") is None else float(data["min"])
        out.max = -math.inf if data.get("max") is None else float(data["max"])
        out.sum = float(data["sum"])
        out.sum_sq = float(data.get("sum_sq", 0.0))
        return out
