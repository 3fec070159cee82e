"""``RowSample``: a bounded, uniform, mergeable sample of a window's rows (bottom-k).

Every row is ranked by a 64-bit hash of its prediction id (``pandas.util.hash_array``,
the same in every process). The sample keeps the ``k`` rows with the smallest hashes.
That set is a uniform sample of all distinct ids seen, and:

- merging two samples is exact: the ``k`` smallest of the union of two bottom-k sets
  are the bottom-k of the union of their inputs;
- merging is idempotent: a row seen twice (a re-delivered partial, a retried request
  with the same id) has one id, so it is kept once.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_SAMPLE_ROWS", "HASH_COLUMN", "ID_COLUMN", "RowSample", "id_hashes", "sampled_mask"]

DEFAULT_SAMPLE_ROWS = 5000
ID_COLUMN = "__prediction_id"
HASH_COLUMN = "__rank"
_SPAN = float(2 ** 64)


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """uint64 rank of each prediction id (deterministic across processes and runs)."""
    return pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False)


def sampled_mask(hashes: np.ndarray, fraction: float) -> np.ndarray | None:
    """Which rows the sampling ``fraction`` keeps (``None``: all). Decided by the id's
    hash, so every worker takes the same decision for the same id."""
    if fraction >= 1.0:
        return None
    return hashes.astype(np.float64) < fraction * _SPAN


class RowSample:
    """The ``k`` rows with the smallest id hashes; columns are the row's values."""

    def __init__(self, k: int = DEFAULT_SAMPLE_ROWS, frame: pd.DataFrame | None = None) -> None:
        if k < 1:
            raise ValueError(f"sample size must be at least 1 row, got {k!r}")
        self.k = k
        self._parts: list[pd.DataFrame] = [] if frame is None or frame.empty else [frame]
        self._rows = 0 if frame is None else len(frame)

    def add(self, frame: pd.DataFrame, ids: Sequence[str], hashes: np.ndarray) -> None:
        """Add rows (``frame`` aligned with ``ids`` and ``hashes``)."""
        if not len(ids):
            return
        part = frame.reset_index(drop=True).copy(deep=False)
        part[ID_COLUMN] = np.asarray(ids, dtype=object)
        part[HASH_COLUMN] = hashes
        if len(part) > self.k:
            part = part.nsmallest(self.k, HASH_COLUMN)
        self._parts.append(part)
        self._rows += len(part)
        if self._rows > 2 * self.k:
            self._compact()

    def merge(self, other: "RowSample") -> None:
        self._parts.extend(other._parts)
        self._rows += other._rows
        self._compact()

    def _compact(self) -> None:
        parts = [p for p in self._parts if len(p)]
        if not parts:
            self._parts, self._rows = [], 0
            return
        both = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True, sort=False)
        both = both.drop_duplicates(subset=ID_COLUMN, keep="first")
        if len(both) > self.k:
            both = both.nsmallest(self.k, HASH_COLUMN)
        both = both.sort_values(HASH_COLUMN, kind="stable").reset_index(drop=True)
        self._parts, self._rows = [both], len(both)

    def frame(self) -> pd.DataFrame:
        """The sample with its id and rank columns, smallest rank first."""
        self._compact()
        return self._parts[0] if self._parts else pd.DataFrame({ID_COLUMN: pd.Series([], dtype=object),
                                                                HASH_COLUMN: pd.Series([], dtype=np.uint64)})

    def values(self) -> pd.DataFrame:
        """The sample's data columns only (what drift is computed on)."""
        return self.frame().drop(columns=[ID_COLUMN, HASH_COLUMN])

    def __len__(self) -> int:
        self._compact()
        return self._rows

    def to_parquet(self) -> bytes:
        buf = io.BytesIO()
        self.frame().to_parquet(buf, index=False)
        return buf.getvalue()

    @classmethod
    def from_parquet(cls, blob: bytes, k: int = DEFAULT_SAMPLE_ROWS) -> "RowSample":
        frame = pd.read_parquet(io.BytesIO(blob))
        missing = {ID_COLUMN, HASH_COLUMN} - set(frame.columns)
        if missing:
            raise ValueError(f"window sample is missing its columns {sorted(missing)}")
        out = cls(k, frame)
        out._compact()
        return out
