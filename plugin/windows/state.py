"""``WindowState``: everything kept about one window of one model version, mergeable.

A worker folds its requests into a state per window; the closer merges the partial
states of all workers and replicas (:meth:`WindowState.merge`) before computing the
window's metrics. Counts, category counts, latency buckets and error counts add
exactly; min and max are exact; means are a float sum over a count; the row sample is a
bottom-k sample by prediction id (:mod:`.sample`), so merging it is exact and idempotent.
State is JSON (:meth:`to_dict`); the row sample is Parquet (:meth:`RowSample.to_parquet`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from mlflow_monitor.windows.categories import DEFAULT_MAX_CATEGORIES
from mlflow_monitor.windows.column import ColumnState, add_frame
from mlflow_monitor.windows.key import WindowKey
from mlflow_monitor.windows.latency import LatencyHistogram
from mlflow_monitor.windows.sample import DEFAULT_SAMPLE_ROWS, RowSample, sampled_mask

__all__ = ["PREDICTION_PREFIX", "STATE_FORMAT", "WindowState"]

STATE_FORMAT = "mlflow_monitor.window_state/1"
PREDICTION_PREFIX = "__prediction__/"  # prediction columns in the row sample


class WindowState:
    """Mergeable statistics of one window (see the module docstring)."""

    def __init__(self, key: WindowKey, *, sample_rows: int = DEFAULT_SAMPLE_ROWS,
                 max_categories: int = DEFAULT_MAX_CATEGORIES) -> None:
        self.key = key
        self.requests = 0  # requests seen, successful or not
        self.rows = 0  # input rows of successful requests
        self.sampled_rows = 0  # rows whose values were folded (the sampling fraction)
        self.errors: dict[int, int] = {}  # HTTP status (>= 400) -> requests
        self.dropped = 0  # records dropped because the capture buffer was full
        self.latency = LatencyHistogram()
        self.columns: dict[str, ColumnState] = {}
        self.predictions: dict[str, ColumnState] = {}
        self.sample = RowSample(sample_rows)
        self.max_categories = max_categories
        self.first_ts: Optional[float] = None
        self.last_ts: Optional[float] = None

    # -- folding -----------------------------------------------------------------------
    def seen(self, ts: float) -> None:
        """Widen the window's first/last timestamps to ``ts``."""
        self.first_ts = ts if self.first_ts is None else min(self.first_ts, ts)
        self.last_ts = ts if self.last_ts is None else max(self.last_ts, ts)

    def add_request(self, latency_ms: float, status: int, ts: float) -> None:
        """One request (its rows are added with :meth:`add_rows`)."""
        self.requests += 1
        self.latency.add(latency_ms)
        if status >= 400:
            self.errors[int(status)] = self.errors.get(int(status), 0) + 1
        self.seen(ts)

    def add_rows(self, inputs: pd.DataFrame, predictions: pd.DataFrame, ids: Sequence[str],
                 hashes: np.ndarray, fraction: float = 1.0) -> None:
        """Rows of successful requests: ``inputs`` and ``predictions`` aligned with ``ids``.

        All or nothing: the columns are folded into fresh states first, so an error
        (a column pandas cannot count) leaves this window as it was.
        """
        n = len(ids)
        keep = sampled_mask(hashes, fraction)
        if keep is not None:
            inputs, predictions = inputs[keep], predictions[keep]
            ids = [i for i, k in zip(ids, keep) if k]
            hashes = hashes[keep]
        if not len(ids):
            self.rows += n
            return
        columns: dict[str, ColumnState] = {}
        preds: dict[str, ColumnState] = {}
        add_frame(columns, inputs, self.max_categories)
        add_frame(preds, predictions, self.max_categories)
        both: Optional[pd.DataFrame] = None
        pos = self.sample.candidates(hashes)
        if pos is None or len(pos):
            if pos is not None:
                inputs, predictions, hashes = inputs.iloc[pos], predictions.iloc[pos], hashes[pos]
                ids = [ids[i] for i in pos]
            renamed = predictions.rename(columns=lambda c: PREDICTION_PREFIX + str(c))
            both = pd.concat([inputs.reset_index(drop=True), renamed.reset_index(drop=True)], axis=1)
        # commit
        self.rows += n
        self.sampled_rows += len(keep.nonzero()[0]) if keep is not None else n
        for mine, new in ((self.columns, columns), (self.predictions, preds)):
            for col, st in new.items():
                if col in mine:
                    mine[col].merge(st)
                else:
                    mine[col] = st
        if both is not None:
            self.sample.add(both, ids, hashes)

    # -- merging ----------------------------------------------------------------------------
    def merge(self, other: "WindowState") -> None:
        if other.key != self.key:
            raise ValueError(f"cannot merge window {other.key} into {self.key}: different windows")
        self.requests += other.requests
        self.rows += other.rows
        self.sampled_rows += other.sampled_rows
        self.dropped += other.dropped
        for status, n in other.errors.items():
            self.errors[status] = self.errors.get(status, 0) + n
        self.latency.merge(other.latency)
        for mine, theirs in ((self.columns, other.columns), (self.predictions, other.predictions)):
            for col, st in theirs.items():
                if col in mine:
                    mine[col].merge(st)
                else:
                    fresh = mine[col] = ColumnState(self.max_categories)
                    fresh.merge(st)
        self.sample.merge(other.sample)
        for ts in (other.first_ts, other.last_ts):
            if ts is not None:
                self.seen(ts)

    # -- reading ------------------------------------------------------------------------------
    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def missing_share(self, column: str) -> float:
        if not self.sampled_rows:
            return float("nan")
        return self.columns[column].missing(self.sampled_rows) / self.sampled_rows

    def sample_inputs(self) -> pd.DataFrame:
        """The row sample's input columns (what drift is computed on)."""
        values = self.sample.values()
        return values[[c for c in values.columns if not str(c).startswith(PREDICTION_PREFIX)]]

    def sample_predictions(self) -> pd.DataFrame:
        values = self.sample.values()
        cols = [c for c in values.columns if str(c).startswith(PREDICTION_PREFIX)]
        return values[cols].rename(columns=lambda c: str(c)[len(PREDICTION_PREFIX):])

    # -- serialization --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able state, without the row sample (that is :meth:`RowSample.to_parquet`)."""
        return {
            "format": STATE_FORMAT,
            "key": self.key.to_dict(),
            "requests": self.requests,
            "rows": self.rows,
            "sampled_rows": self.sampled_rows,
            "errors": [[s, n] for s, n in sorted(self.errors.items())],
            "dropped": self.dropped,
            "latency": self.latency.to_dict(),
            "columns": {c: s.to_dict() for c, s in self.columns.items()},
            "predictions": {c: s.to_dict() for c, s in self.predictions.items()},
            "sample_rows": self.sample.k,
            "max_categories": self.max_categories,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], sample_parquet: Optional[bytes] = None) -> "WindowState":
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"window state format is {data.get('format')!r}, expected {STATE_FORMAT!r}")
        max_cat = int(data.get("max_categories", DEFAULT_MAX_CATEGORIES))
        out = cls(WindowKey.from_dict(data["key"]), sample_rows=int(data["sample_rows"]), max_categories=max_cat)
        out.requests = int(data["requests"])
        out.rows = int(data["rows"])
        out.sampled_rows = int(data["sampled_rows"])
        out.errors = {int(s): int(n) for s, n in data["errors"]}
        out.dropped = int(data.get("dropped", 0))
        out.latency = LatencyHistogram.from_dict(data["latency"])
        out.columns = {c: ColumnState.from_dict(s, max_cat) for c, s in data["columns"].items()}
        out.predictions = {c: ColumnState.from_dict(s, max_cat) for c, s in data["predictions"].items()}
        if sample_parquet is not None:
            out.sample = RowSample.from_parquet(sample_parquet, out.sample.k)
        out.first_ts = data.get("first_ts")
        out.last_ts = data.get("last_ts")
        return out
