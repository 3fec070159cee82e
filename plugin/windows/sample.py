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
from typing import Optional, Sequence

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
    """The ``k`` rows with the smallest id hashes; columns are the row's values.

    Parts are kept as (values, ids, ranks) until they are compacted, so adding rows does
    not copy a frame.
    """

    def __init__(self, k: int = DEFAULT_SAMPLE_ROWS, frame: pd.DataFrame | None = None) -> None:
        if k < 1:
            raise ValueError(f"sample size must be at least 1 row, got {k!r}")
        self.k = k
        self._parts: list[tuple[pd.DataFrame, np.ndarray, np.ndarray]] = []
        self._rows = 0
        # once k rows are kept, a row ranked above the k-th can never enter: skipped early
        self._threshold: Optional[int] = None
        self._sorted = True  # False while parts wait for a compaction
        if frame is not None and len(frame):
            self._parts.append((frame.drop(columns=[ID_COLUMN, HASH_COLUMN]).reset_index(drop=True),
                                frame[ID_COLUMN].to_numpy(dtype=object),
                                frame[HASH_COLUMN].to_numpy(dtype=np.uint64)))
            self._rows = len(frame)
            self._sorted = False

    def candidates(self, hashes: np.ndarray) -> Optional[np.ndarray]:
        """Positions of the rows that may enter the sample (``None``: all of them), so a
        caller builds only those rows."""
        if self._threshold is None and len(hashes) <= self.k:
            return None
        pos = np.arange(len(hashes)) if self._threshold is None else np.flatnonzero(hashes <= self._threshold)
        if len(pos) > self.k:
            pos = pos[np.argpartition(hashes[pos], self.k - 1)[:self.k]]
        return pos

    def add(self, frame: pd.DataFrame, ids: Sequence[str], hashes: np.ndarray) -> None:
        """Add rows (``frame`` aligned with ``ids`` and ``hashes``)."""
        if not len(ids):
            return
        pos = self.candidates(hashes)
        id_arr = np.asarray(ids, dtype=object)
        if pos is not None:
            if not len(pos):
                return
            frame, id_arr, hashes = frame.iloc[pos], id_arr[pos], hashes[pos]
        self._parts.append((frame, id_arr, np.asarray(hashes, dtype=np.uint64)))
        self._rows += len(id_arr)
        self._sorted = False
        if self._rows > 2 * self.k:
            self._compact()

    def merge(self, other: "RowSample") -> None:
        self._parts.extend(other._parts)
        self._rows += other._rows
        self._sorted = False
        self._compact()

    def _compact(self) -> None:
        if self._sorted:
            return
        parts = [p for p in self._parts if len(p[1])]
        if not parts:
            self._parts, self._rows, self._sorted = [], 0, True
            return
        frames = [p[0].reset_index(drop=True) for p in parts]
        values = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)
        ids = np.concatenate([p[1] for p in parts])
        ranks = np.concatenate([p[2] for p in parts])
        first = ~pd.Index(ids).duplicated(keep="first")
        pos = np.flatnonzero(first)
        if len(pos) > self.k:
            pos = pos[np.argpartition(ranks[pos], self.k - 1)[:self.k]]
        pos = pos[np.argsort(ranks[pos], kind="stable")]
        self._parts = [(values.iloc[pos].reset_index(drop=True), ids[pos], ranks[pos])]
        self._rows = len(pos)
        self._sorted = True
        if self._rows >= self.k:
            self._threshold = int(ranks[pos[-1]])

    def frame(self) -> pd.DataFrame:
        """The sample with its id and rank columns, smallest rank first."""
        self._compact()
        if not self._parts:
            return pd.DataFrame({ID_COLUMN: pd.Series([], dtype=object),
                                 HASH_COLUMN: pd.Series([], dtype=np.uint64)})
        values, ids, ranks = self._parts[0]
        return values.assign(**{ID_COLUMN: ids, HASH_COLUMN: ranks})

    def values(self) -> pd.DataFrame:
        """The sample's data columns only (what drift is computed on)."""
        self._compact()
        return self._parts[0][0] if self._parts else pd.DataFrame()

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
