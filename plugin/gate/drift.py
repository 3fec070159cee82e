"""Fast, exact per-column drift verdict with Evidently 0.7's ``DataDriftPreset`` defaults.

Evidently computes every column's stat test three times (``ValueDrift``, the legacy
``DatasetDriftMetric`` and ``DataDriftTable``) plus histograms, correlations and plots.
The gate only needs the verdict, so this module computes each column once, with the
same default test, threshold and drift rule (mirrors
``evidently.legacy.calculations.stattests.registry._get_default_stattest``):

==========  ===================  ==================================  ===========  =================
side         column type          condition (on cleaned data)         method        drifted when
==========  ===================  ==================================  ===========  =================
ref > 1000   numerical            combined n_unique > 5               wasserstein   score >= 0.1
ref > 1000   numerical            combined n_unique <= 5              jensenshannon score >= 0.1
ref > 1000   categorical          --                                  jensenshannon score >= 0.1
ref <= 1000  numerical            combined n_unique > 5               ks            p <= 0.05
ref <= 1000  num. or categorical  combined n_unique in (2, 5] / > 2   chisquare     p < 0.05
ref <= 1000  num. or categorical  combined n_unique <= 2              z             p < 0.05
==========  ===================  ==================================  ===========  =================

"Cleaned" means +/-inf and NaN/None dropped from each side first, as Evidently does; the
row counts above are of the cleaned reference column. Wasserstein is divided by
``max(std(reference), 0.001)``. Jensen-Shannon runs on per-value frequencies (natural log).

The exact Wasserstein distance comes from one stable merge of the two sorted samples
instead of SciPy's mergesort plus two binary searches; the arithmetic is the same, so the
score matches ``scipy.stats.wasserstein_distance`` to the last few bits.
"""

from __future__ import annotations

import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

from mlflow_monitor.gate.validation import DataValidationError

__all__ = [
    "ColumnDrift",
    "DriftResult",
    "ReferenceProfile",
    "compute_drift",
    "infer_column_types",
]

DEFAULT_DRIFT_SHARE = 0.5  # Evidently DataDriftPreset(drift_share=0.5)
SMALL_REFERENCE_ROWS = 1000  # Evidently switches from distances to p-value tests at or below this
_INTEGER_CARDINALITY_LIMIT = 10  # evidently.core.datasets.INTEGER_CARDINALITY_LIMIT

_THRESHOLDS = {"wasserstein": 0.1, "jensenshannon": 0.1, "ks": 0.05, "chisquare": 0.05, "z": 0.05}
_P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column, as Evidently's default stat test decides it."""

    column: str
    column_type: str  # "num" | "cat"
    method: str  # Evidently stattest name: wasserstein, jensenshannon, ks, chisquare, z
    threshold: float
    score: float  # distance (wasserstein, jensenshannon) or p-value (ks, chisquare, z)
    drifted: bool

    @property
    def severity(self) -> float:
        """How far past (> 1) or short of (< 1) the threshold the score is."""
        if self.method in _P_VALUE_METHODS:
            return math.inf if self.score <= 0 else self.threshold / self.score
        return self.score / self.threshold


@dataclass(frozen=True)
class DriftResult:
    """Per-column drift plus the dataset-level share, like Evidently's ``DriftedColumnsCount``."""

    columns: list[ColumnDrift]
    n_columns: int
    n_drifted: int
    drift_share: float
    dataset_drift: bool
    reference_rows: int
    current_rows: int
    skipped: tuple[str, ...] = field(default=())  # text/datetime/unknown columns not checked

    def top(self, n: int) -> list[ColumnDrift]:
        """The ``n`` most drifted columns: drifted ones first, then by score vs threshold."""
        return sorted(self.columns, key=lambda c: (not c.drifted, -c.severity, c.column))[:n]

    def column(self, name: str) -> ColumnDrift:
        """The result for one column; KeyError names it when it was not checked."""
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(f"column {name!r} was not checked for drift")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skipped"] = list(self.skipped)
        return d


# --------------------------------------------------------------------------------------
# Column types


def _infer_type(s: pd.Series) -> str:
    """Mirror of ``evidently.core.datasets.infer_column_type``: "num", "cat" or "other"."""
    name = s.dtype.name
    if name.startswith("float"):
        return "num"
    if name.startswith("int"):
        return "cat" if s.nunique() <= _INTEGER_CARDINALITY_LIMIT else "num"
    if name in ("string", "str"):
        return "other" if s.nunique() > s.count() * 0.5 else "cat"
    if name == "object":
        non_na = s.dropna()
        if len(non_na) == 0:
            return "other"
        if isinstance(non_na.iloc[0], str) and isinstance(non_na.iloc[-1], str):
            return "other" if s.nunique() > s.count() * 0.5 else "cat"
        return "other"
    if name in ("bool", "category"):
        return "cat"
    return "other"


def infer_column_types(
    current: pd.DataFrame,
    *,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> tuple[list[str], list[str], list[str]]:
    """Split ``current``'s columns the way Evidently's ``DataDefinition`` does.

    Evidently infers types from the *current* frame. Lists given explicitly are kept and
    their columns are not inferred again (as with a partial ``DataDefinition``). Returns
    ``(numerical, categorical, skipped)``; ``skipped`` holds text, datetime and unknown
    columns, which the verdict does not check. Pass the first two lists to
    ``DataDefinition(numerical_columns=..., categorical_columns=...)`` so an Evidently
    report covers exactly the same columns.
    """
    reserved = set(exclude) | set(numerical or ()) | set(categorical or ())
    inferred_num: list[str] = []
    inferred_cat: list[str] = []
    skipped: list[str] = []
    for col in current.columns:
        if col in reserved:
            continue
        kind = _infer_type(current[col])
        {"num": inferred_num, "cat": inferred_cat, "other": skipped}[kind].append(col)
    num = list(numerical) if numerical is not None else inferred_num
    cat = list(categorical) if categorical is not None else inferred_cat
    if numerical is not None:
        skipped += [c for c in inferred_num if c not in num]
    if categorical is not None:
        skipped += [c for c in inferred_cat if c not in cat]
    return num, cat, skipped


# --------------------------------------------------------------------------------------
# One side of one column, cleaned


class _Side:
    """One side (reference or current) of one column, NaN/inf dropped.

    Numeric data is held as values in their own dtype (sorted lazily, once); other data
    as value counts.
    """

    __slots__ = ("_values", "_sorted", "_f64", "_counts", "n", "_std")

    def __init__(self, *, values: np.ndarray | None = None, is_sorted: bool = False,
                 counts: dict | None = None, std: float | None = None) -> None:
        self._values = values
        self._sorted = is_sorted
        self._f64: np.ndarray | None = None
        self._counts = counts
        self._std = std
        self.n = int(len(values)) if values is not None else int(sum(counts.values()))  # type: ignore[union-attr]

    @classmethod
    def from_series(cls, s: pd.Series, column: str, where: str, want: str) -> "_Side":
        if _is_numeric(s):
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
            side = cls(counts=_value_counts(s))
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


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s.dtype) and not isinstance(s.dtype, pd.CategoricalDtype)


def _value_counts(s: pd.Series) -> dict:
    vc = s.value_counts(dropna=True, sort=False)
    out = {}
    for key, cnt in zip(vc.index.tolist(), vc.to_numpy().tolist()):
        if cnt == 0 or (isinstance(key, float) and not math.isfinite(key)):
            continue  # unobserved category / inf, which Evidently drops as NaN
        out[key] = int(cnt)
    return out


# --------------------------------------------------------------------------------------
# Stat tests (each mirrors one evidently.legacy.calculations.stattests module)


def _merged(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge two sorted samples: merged values and, per position, how many came from ``u``."""
    both = np.concatenate((u, v))
    order = np.argsort(both, kind="stable")  # two sorted runs: an O(n) timsort merge
    merged = both[order]
    del both
    from_u = order < len(u)
    del order
    return merged, np.cumsum(from_u)


def _wasserstein(cu: np.ndarray, deltas: np.ndarray, n: int, m: int) -> float:
    """``scipy.stats.wasserstein_distance`` from the merged samples (same arithmetic).

    ``cu[k]``: how many of the first ``k + 1`` merged values came from the ``n`` reference
    values; ``deltas``: gaps between successive merged values.
    """
    cu = cu[:-1]
    cv = np.arange(1, len(cu) + 1, dtype=cu.dtype)
    cv -= cu  # how many came from the m current values, up to here
    diff = cu / n
    diff -= cv / m
    np.abs(diff, out=diff)
    diff *= deltas
    # numpy's pairwise sum, not BLAS: a multithreaded ddot stalls for milliseconds on a
    # busy machine, and the sum of non-negative terms is as exact either way
    return float(np.add.reduce(diff))


def _frequencies(ref: dict, cur: dict) -> tuple[list, np.ndarray, np.ndarray]:
    keys = list(ref.keys() | cur.keys())
    r = np.array([ref.get(k, 0) for k in keys], dtype=np.int64)
    c = np.array([cur.get(k, 0) for k in keys], dtype=np.int64)
    return keys, r, c


def _jensenshannon(ref: _Side, cur: _Side) -> float:
    _, r, c = _frequencies(ref.counts(), cur.counts())
    return float(distance.jensenshannon(r / ref.n, c / cur.n))


def _chisquare(ref: _Side, cur: _Side) -> float:
    _, r, c = _frequencies(ref.counts(), cur.counts())
    k_norm = cur.n / ref.n
    f_exp = [float(x) * k_norm for x in r.tolist()]
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(stats.chisquare(c.tolist(), f_exp)[1])


def _z(ref: _Side, cur: _Side) -> float:
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


def _ks(ref: _Side, cur: _Side) -> float:
    return float(stats.ks_2samp(ref.sorted64(), cur.sorted64())[1])


def _decide(method: str, score: float, threshold: float) -> bool:
    if method in ("wasserstein", "jensenshannon"):
        return score >= threshold
    if method == "ks":
        return score <= threshold
    return score < threshold  # chisquare, z


def _numeric_column(name: str, ref: _Side, cur: _Side) -> ColumnDrift:
    u, v = ref.sorted64(), cur.sorted64()
    merged, cu = _merged(u, v)
    deltas = np.diff(merged)
    del merged
    n_unique = int(np.count_nonzero(deltas)) + 1
    if ref.n <= SMALL_REFERENCE_ROWS:
        del cu, deltas
        if n_unique <= 5:
            method = "chisquare" if n_unique > 2 else "z"
            score = _chisquare(ref, cur) if method == "chisquare" else _z(ref, cur)
        else:
            method, score = "ks", _ks(ref, cur)
    elif n_unique <= 5:
        del cu, deltas
        method, score = "jensenshannon", _jensenshannon(ref, cur)
    else:
        w = _wasserstein(cu, deltas, ref.n, cur.n)
        method, score = "wasserstein", w / max(ref.std(), 0.001)
    thr = _THRESHOLDS[method]
    return ColumnDrift(name, "num", method, thr, score, _decide(method, score, thr))


def _categorical_column(name: str, ref: _Side, cur: _Side) -> ColumnDrift:
    if ref.n > SMALL_REFERENCE_ROWS:
        method, score = "jensenshannon", _jensenshannon(ref, cur)
    else:
        n_unique = len(ref.counts().keys() | cur.counts().keys())
        method = "chisquare" if n_unique > 2 else "z"
        score = _chisquare(ref, cur) if method == "chisquare" else _z(ref, cur)
    thr = _THRESHOLDS[method]
    return ColumnDrift(name, "cat", method, thr, score, _decide(method, score, thr))


# --------------------------------------------------------------------------------------
# Reference profile


class ReferenceProfile:
    """Per-column reference data the verdict needs, precomputed once at logging time.

    Numeric-dtype columns keep their finite values, sorted, and their ``np.std``; other
    columns keep value counts. With a profile ``compute_drift`` needs no reference frame
    and skips the reference-side sort and counting.
    """

    _FORMAT = "mlflow_monitor.reference_profile/1"

    def __init__(self, rows: int, columns: Mapping[str, _Side], dtypes: Mapping[str, str],
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
        cols: dict[str, _Side] = {}
        unprofiled: dict[str, str] = {}
        for col in reference.columns:
            name, s = str(col), reference[col]
            if _is_numeric(s) and s.dtype.kind != "b":
                try:
                    side = _Side.from_series(s, name, "reference", "num")
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
                    side = _Side(counts=_value_counts(s))
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

    def side(self, column: str) -> _Side:
        try:
            return self._columns[column]
        except KeyError:
            why = self.unprofiled.get(column, "it was not in the logged reference data")
            raise DataValidationError(
                f"column {column!r} is not in the reference profile: {why}"
            ) from None

    def to_bytes(self) -> bytes:
        """A ``.npz`` blob: numeric arrays plus a JSON header. No pickle."""
        header: dict[str, Any] = {"format": self._FORMAT, "rows": self.rows, "dtypes": self.dtypes,
                                  "unprofiled": self.unprofiled, "columns": {}}
        arrays: dict[str, np.ndarray] = {}
        for i, (name, side) in enumerate(self._columns.items()):
            if side.is_numeric:
                side.sort()
                arrays[f"v{i}"] = side.values()
                header["columns"][name] = {"kind": "values", "array": f"v{i}", "std": side.std()}
            else:
                counts = side.counts()
                arrays[f"c{i}"] = np.array(list(counts.values()), dtype=np.int64)
                header["columns"][name] = {"kind": "counts", "array": f"c{i}", "keys": list(counts)}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> "ReferenceProfile":
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            header = json.loads(z["header"].tobytes().decode())
            if header.get("format") != cls._FORMAT:
                raise ValueError(
                    f"reference profile format is {header.get('format')!r}, expected {cls._FORMAT!r}"
                )
            cols: dict[str, _Side] = {}
            for name, meta in header["columns"].items():
                arr = z[meta["array"]]
                if meta["kind"] == "values":
                    cols[name] = _Side(values=arr, is_sorted=True, std=meta["std"])
                else:
                    cols[name] = _Side(counts=dict(zip(meta["keys"], arr.tolist())))
        return cls(header["rows"], cols, header["dtypes"], header.get("unprofiled"))


# --------------------------------------------------------------------------------------
# Entry point


def _default_workers() -> int:
    """Half the CPUs, at most 4: the gate often runs inside ``mlflow server``."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def compute_drift(
    reference: pd.DataFrame | None,
    current: pd.DataFrame,
    *,
    numerical: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    profile: ReferenceProfile | None = None,
    drift_share: float = DEFAULT_DRIFT_SHARE,
    workers: int | None = None,
) -> DriftResult:
    """Per-column drift of ``current`` against ``reference``, as Evidently's DataDriftPreset.

    Column types come from ``numerical``/``categorical`` or are inferred from ``current``
    as Evidently does. With ``profile`` the reference frame may be ``None``. Columns are
    computed on ``workers`` threads (default: half the CPUs, at most 4); each thread needs
    about 100 bytes per reference+current row of transient memory.
    Raises ``DataValidationError`` for a missing column, a column with no finite values,
    or non-numeric data in a numerical column.
    """
    if reference is None and profile is None:
        raise DataValidationError("compute_drift needs a reference frame or a reference profile")
    if not 0.0 < drift_share <= 1.0:
        raise ValueError(f"drift_share must be in (0, 1], got {drift_share!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers!r}")
    both = sorted(set(numerical or ()) & set(categorical or ()), key=str)
    if both:
        raise DataValidationError(f"columns {both!r} are listed as both numerical and categorical")
    num, cat, skipped = infer_column_types(current, numerical=numerical, categorical=categorical)
    if not num and not cat:
        raise DataValidationError(
            f"no numerical or categorical columns to compare; current data has {list(current.columns)}"
        )
    for col in [*num, *cat]:
        if col not in current.columns:
            raise DataValidationError(f"column {col!r} is missing from the current data")
        if profile is None and col not in reference.columns:  # type: ignore[union-attr]
            raise DataValidationError(f"column {col!r} is missing from the reference data")

    def one(col: Any) -> ColumnDrift:
        kind = "num" if col in num_set else "cat"
        if profile is not None:
            ref = profile.side(str(col))
        else:
            ref = _Side.from_series(reference[col], str(col), "reference", kind)  # type: ignore[index]
        cur = _Side.from_series(current[col], str(col), "current", kind)
        if kind == "cat":
            return _categorical_column(str(col), ref, cur)
        if not ref.is_numeric:
            actual = profile.dtypes.get(str(col)) if profile is not None else reference[col].dtype  # type: ignore[index]
            raise DataValidationError(f"column {col!r} should be numerical but is {actual} in reference data")
        return _numeric_column(str(col), ref, cur)

    num_set = set(num)
    columns = [*num, *cat]  # Evidently's order: numerical, then categorical
    n_workers = max(1, min(workers if workers is not None else _default_workers(), len(columns)))
    if n_workers == 1:
        results = [one(c) for c in columns]
    else:  # numpy sorts release the GIL; columns are independent
        with ThreadPoolExecutor(n_workers, thread_name_prefix="mlflow-monitor-drift") as pool:
            results = list(pool.map(one, columns))

    n_drifted = sum(c.drifted for c in results)
    share = n_drifted / len(results)
    return DriftResult(
        columns=results,
        n_columns=len(results),
        n_drifted=n_drifted,
        drift_share=share,
        dataset_drift=bool(share >= drift_share),
        reference_rows=profile.rows if profile is not None else len(reference),  # type: ignore[arg-type]
        current_rows=len(current),
        skipped=tuple(skipped),
    )
