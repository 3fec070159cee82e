"""``ReferenceProfile``: the storage format of the reference side of the drift verdict.

Logged as ``profile.npz`` next to the reference data by
:func:`mlflow_monitor.reference.log_reference`: a ``.npz`` blob of numeric arrays plus a
JSON header, never pickle.
"""

from __future__ import annotations

import io
import json
from typing import Any, Mapping

import numpy as np
import pandas as pd

from mlflow_monitor.reference.column import ColumnSample, is_numeric_series, value_counts
from mlflow_monitor.reference.errors import DataValidationError

__all__ = ["ReferenceProfile"]


class ReferenceProfile:
    """Per-column reference data the verdict needs, precomputed once at logging time.

    Numeric-dtype columns keep their finite values, sorted, and their ``np.std``; other
    columns keep value counts. With a profile ``compute_drift`` needs no reference frame
    and skips the reference-side sort and counting.
    """

    FORMAT = "mlflow_monitor.reference_profile/1"

    def __init__(self, rows: int, columns: Mapping[str, ColumnSample], dtypes: Mapping[str, str],
                 unprofiled: Mapping[str, str] | None = None) -> None:
        self.rows = rows
        self._columns = dict(columns)
        self.dtypes = dict(dtypes)
        self.unprofiled = dict(unprofiled or {})  # column -> why the verdict cannot use it

    @classmethod
    def from_frame(cls, reference: pd.DataFrame) -> "ReferenceProfile":
        """Profile every column of ``reference`` that the verdict can check.

        Columns it cannot (no finite value, datetimes, values that are not str, int,
        float or bool) are listed in ``unprofiled`` with the reason.
        """
        cols: dict[str, ColumnSample] = {}
        unprofiled: dict[str, str] = {}
        for col in reference.columns:
            name, s = str(col), reference[col]
            if is_numeric_series(s) and s.dtype.kind != "b":
                try:
                    side = ColumnSample.from_series(s, name, "reference", "num")
                except DataValidationError:
                    unprofiled[name] = "it has no finite values"
                    continue
                side.std()
                side.sort()
            elif s.dtype.kind in "mM" or not (s.dtype.kind in "bOU" or isinstance(
                    s.dtype, (pd.CategoricalDtype, pd.StringDtype))):
                unprofiled[name] = f"its dtype {s.dtype} is not numerical or categorical"
                continue
            else:
                try:
                    side = ColumnSample(counts=value_counts(s))
                except TypeError as exc:  # unhashable values such as lists
                    unprofiled[name] = f"its values cannot be counted ({exc})"
                    continue
                bad = next((k for k in side.counts() if not isinstance(k, (str, int, float, bool))), None)
                if bad is not None:
                    unprofiled[name] = f"it holds a {type(bad).__name__} value; profiles store str, int, float or bool"
                    continue
                if side.n == 0:
                    unprofiled[name] = "it has no non-null values"
                    continue
            cols[name] = side
        dtypes = {str(c): str(t) for c, t in reference.dtypes.items()}
        return cls(len(reference), cols, dtypes, unprofiled)

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def side(self, column: str) -> ColumnSample:
        """The stored reference side of ``column``; :class:`DataValidationError` says why
        when it was not profiled."""
        try:
            return self._columns[column]
        except KeyError:
            why = self.unprofiled.get(column, "it was not in the logged reference data")
            raise DataValidationError(
                f"column {column!r} is not in the reference profile: {why}"
            ) from None

    def to_bytes(self) -> bytes:
        """A ``.npz`` blob: numeric arrays plus a JSON header. No pickle."""
        header: dict[str, Any] = {"format": self.FORMAT, "rows": self.rows, "dtypes": self.dtypes,
                                  "unprofiled": self.unprofiled, "columns": {}}
        arrays: dict[str, np.ndarray] = {}
        for i, (name, side) in enumerate(self._columns.items()):
            if side.is_numeric:
                side.sort()
                arrays[f"v{i}"] = side.values()
                header["columns"][name] = {"kind": "values", "array": f"v{i}", "std": side.std(),
                                           "digest": side.digest()}
            else:
                counts = side.counts()
                arrays[f"c{i}"] = np.array(list(counts.values()), dtype=np.int64)
                header["columns"][name] = {"kind": "counts", "array": f"c{i}", "keys": list(counts),
                                           "digest": side.digest()}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "ReferenceProfile":
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            if header.get("format") != cls.FORMAT:
                raise ValueError(
                    f"reference profile format is {header.get('format')!r}, expected {cls.FORMAT!r}"
                )
            cols: dict[str, ColumnSample] = {}
            for name, meta in header["columns"].items():
                arr = z[meta["array"]]
                if meta["kind"] == "values":
                    cols[name] = ColumnSample(values=arr, is_sorted=True, std=meta["std"],
                                              digest=meta.get("digest"))
                else:
                    cols[name] = ColumnSample(counts=dict(zip(meta["keys"], arr.tolist())),
                                              digest=meta.get("digest"))
        return cls(header["rows"], cols, header["dtypes"], header.get("unprofiled"))
