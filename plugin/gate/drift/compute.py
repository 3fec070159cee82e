"""``compute_drift``: the per-column drift verdict of a current frame against a reference.

Each column is cleaned once (:class:`~mlflow_monitor.reference.ColumnSample`), given its
default test (:mod:`.defaults`) and scored by that test's descriptor (:mod:`.stattests`).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

import pandas as pd

from mlflow_monitor.gate.drift.column_types import infer_column_types
from mlflow_monitor.gate.drift.defaults import default_stattest
from mlflow_monitor.gate.drift.merge import SortedMerge
from mlflow_monitor.gate.drift.result import ColumnDrift, DriftResult
from mlflow_monitor.reference import ColumnSample, DataValidationError, ReferenceProfile

__all__ = ["DEFAULT_DRIFT_SHARE", "column_drift", "compute_drift"]

DEFAULT_DRIFT_SHARE = 0.5  # Evidently DataDriftPreset(drift_share=0.5)


def column_drift(name: str, column_type: str, reference: ColumnSample, current: ColumnSample) -> ColumnDrift:
    """Drift of one cleaned column (``column_type`` "num" or "cat") with its default test."""
    merge: Optional[SortedMerge] = SortedMerge(reference, current) if column_type == "num" else None

    def n_unique() -> int:
        if merge is not None:
            return merge.n_unique
        return len(reference.counts().keys() | current.counts().keys())

    test = default_stattest(column_type, reference.n, n_unique)
    if not test.uses_merge:
        merge = None  # free the merged arrays before the test allocates its own
    score = test.score(reference, current, merge)
    threshold = test.default_threshold
    return ColumnDrift(name, column_type, test.name, threshold, score, test.drifted(score, threshold))


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
            ref = ColumnSample.from_series(reference[col], str(col), "reference", kind)  # type: ignore[index]
        cur = ColumnSample.from_series(current[col], str(col), "current", kind)
        if kind == "num" and not ref.is_numeric:
            actual = profile.dtypes.get(str(col)) if profile is not None else reference[col].dtype  # type: ignore[index]
            raise DataValidationError(f"column {col!r} should be numerical but is {actual} in reference data")
        return column_drift(str(col), kind, ref, cur)

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
