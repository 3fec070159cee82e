"""One side (reference or current) of one column, cleaned the way Evidently cleans it.

A :class:`ColumnSample` is what the drift verdict compares and what a
:class:`~mlflow_monitor.reference.ReferenceProfile` stores: +/-inf and NaN/None dropped;
numeric data held as values in their own dtype (sorted lazily, once), other data as
value counts.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd

from mlflow_monitor.reference.errors import DataValidationError

__all__ = ["ColumnSample", "is_numeric_series", "value_counts"]


class ColumnSample:
    """One side of one column, NaN/inf dropped: sorted-on-demand values or value counts."""

    __slots__ = ("_values", "_sorted", "_f64", "_counts", "n", "_std", "_digest")

    def __init__(self, *, values: np.ndarray | None = None, is_sorted: bool = False,
                 counts: dict | None = None, std: float | None = None, digest: str | None = None) -> None:
        self._digest = digest
        self._values = values
        self._sorted = is_sorted
        self._f64: np.ndarray | None = None
        self._counts = counts
        self._std = std
        self.n = int(len(values)) if values is not None else int(sum(counts.values()))  # type: ignore[union-attr]

    @classmethod
    def from_series(cls, s: pd.Series, column: str, where: str, want: str) -> "ColumnSample":
        """``s`` cleaned; ``want`` is the column type ("num" or "cat") and ``where`` the side
        named in errors. Raises :class:`DataValidationError` for text in a numerical
        column or a column with no finite, non-null value."""
        if is_numeric_series(s):
            raw = s.to_numpy()
            if raw.dtype.kind not in "iubf":  # nullable extension dtypes
                raw = s.to_numpy(dtype=np.float64, na_value=np.nan)
            if raw.dtype.kind == "f":
                finite = np.isfinite(raw)
                if not finite.all():
                    raw = raw[finite]
            side = cls(values=raw)
        elif want == "num":
            raise DataValidationError(
                f"column {column!r} should be numerical but is {s.dtype} in {where} data"
            )
        else:
            side = cls(counts=value_counts(s))
        if side.n == 0:
            raise DataValidationError(
                f"column {column!r} has no finite, non-null values in {where} data"
            )
        return side

    @property
    def is_numeric(self) -> bool:
        return self._values is not None

    def values(self) -> np.ndarray:
        assert self._values is not None
        return self._values

    def sort(self) -> None:
        """Sort the values in place, keeping their dtype (integers stay exact)."""
        if not self._sorted:
            self._values = np.sort(self.values())
            self._sorted = True

    def sorted64(self) -> np.ndarray:
        """Values as sorted float64 (what SciPy's tests see)."""
        if self._f64 is None:
            self.sort()
            self._f64 = self.values().astype(np.float64, copy=False)
        return self._f64

    def counts(self) -> dict:
        if self._counts is None:
            keys, cnt = np.unique(self.values(), return_counts=True)
            self._counts = dict(zip(keys.tolist(), cnt.tolist()))
        return self._counts

    def std(self) -> float:
        """``np.std`` of the cleaned pandas Series, exactly as Evidently's Wasserstein norm."""
        if self._std is None:
            v = self.values()
            if v.dtype == np.float64 or v.dtype.kind in "iu":
                self._std = float(np.std(v))  # pandas' nanstd does the same float64 arithmetic
            else:  # float32: pandas rounds its std to float32, so use pandas itself
                self._std = float(np.std(pd.Series(v, copy=False)))
        return self._std


    def digest(self) -> str:
        """A content hash of the cleaned side (sorted values or value counts): the key of
        cached drift calibrations. Stored in a profile, so a promotion does not rehash."""
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            if self.is_numeric:
                self.sort()
                v = np.ascontiguousarray(self.values())
                h.update(f"values:{v.dtype.str}:".encode())
                h.update(v.data.cast("B"))
            else:
                items = sorted(((type(k).__name__, str(k), c) for k, c in self.counts().items()))
                h.update(b"counts:" + json.dumps(items).encode())
            self._digest = h.hexdigest()
        return self._digest


def is_numeric_series(s: pd.Series) -> bool:
    """Numeric dtype that is not a pandas categorical."""
    return pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)


def value_counts(s: pd.Series) -> dict:
    """Observed values and their counts, NaN/None/inf dropped."""
    vc = s.value_counts(dropna=True, sort=False)
    out = {}
    for key, cnt in zip(vc.index.tolist(), vc.to_numpy().tolist()):
        if cnt == 0 or (isinstance(key, float) and not math.isfinite(key)):
            continue  # unobserved category / inf, which Evidently drops as NaN
        out[key] = int(cnt)
    return out
