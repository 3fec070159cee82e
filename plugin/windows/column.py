"""``ColumnState``: the mergeable statistics of one column in one window."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from mlflow_monitor.windows.categories import DEFAULT_MAX_CATEGORIES, CategoryCounts
from mlflow_monitor.windows.numeric import NumericStats

__all__ = ["ColumnState", "add_frame", "is_numeric"]


def is_numeric(s: pd.Series) -> bool:
    """A numeric, non-boolean, non-categorical column (its values go to NumericStats)."""
    return (pd.api.types.is_numeric_dtype(s.dtype) and s.dtype.kind != "b"
            and not isinstance(s.dtype, pd.CategoricalDtype))


class ColumnState:
    """Numeric values go to :class:`NumericStats`, other values to exact
    :class:`CategoryCounts`; missing values are the rows with neither."""

    __slots__ = ("numeric", "categories")

    def __init__(self, max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        self.numeric = NumericStats()
        self.categories = CategoryCounts(max_categories)

    def add(self, s: pd.Series) -> None:
        if is_numeric(s):
            values = s.to_numpy(dtype=np.float64, na_value=np.nan)
            self.numeric.add(values[~np.isnan(values)])
            return
        try:
            vc = s.value_counts(dropna=True, sort=False)
        except TypeError:  # unhashable values (lists, dicts): counted by their text
            vc = s.dropna().map(str).value_counts(sort=False)
        pairs = []
        for value, n in zip(vc.index.tolist(), vc.to_numpy().tolist()):
            if n == 0 or (isinstance(value, float) and not math.isfinite(value)):
                continue
            if not isinstance(value, (str, int, float, bool)):
                value = str(value)
            pairs.append((value, int(n)))
        self.categories.add_counts(pairs)

    def merge(self, other: "ColumnState") -> None:
        self.numeric.merge(other.numeric)
        self.categories.merge(other.categories)

    @property
    def present(self) -> int:
        """Rows with a (non-missing) value; +/-inf counts as present but not finite."""
        return self.numeric.count + self.numeric.nonfinite + self.categories.total

    @property
    def kind(self) -> str:
        """"num", "cat", "mixed" (both seen) or "empty"."""
        num = self.numeric.count + self.numeric.nonfinite > 0
        cat = self.categories.total > 0
        return {(True, False): "num", (False, True): "cat", (True, True): "mixed"}.get((num, cat), "empty")

    def missing(self, rows: int) -> int:
        return max(rows - self.present, 0)

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": self.numeric.to_dict(), "categories": self.categories.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], max_categories: int = DEFAULT_MAX_CATEGORIES) -> "ColumnState":
        out = cls(max_categories)
        out.numeric = NumericStats.from_dict(data["numeric"])
        out.categories = CategoryCounts.from_dict(data["categories"], max_categories)
        return out


def add_frame(table: "dict[str, ColumnState]", frame: pd.DataFrame, max_categories: int) -> None:
    """Fold every column of ``frame`` into ``table`` (new columns get a state); numeric
    columns in one vectorised block."""
    numeric: list[str] = []
    for col in frame.columns:
        if col not in table:
            table[col] = ColumnState(max_categories)
        s = frame[col]
        if is_numeric(s):
            numeric.append(col)
        else:
            table[col].add(s)
    if numeric:
        block = frame[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        NumericStats.add_block([table[c].numeric for c in numeric], block)
