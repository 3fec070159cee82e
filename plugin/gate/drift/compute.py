"""``compute_drift``: the per-column drift verdict of a current frame against a reference.

Each column is cleaned once (:class:`~mlflow_monitor.reference.ColumnSample`). Evidently
detection gives it its default test (:mod:`.defaults`) scored by that test's descriptor
(:mod:`.stattests`); calibrated detection scores it with a distance and compares it with
its calibrated threshold (:mod:`.calibration`). Both add the data-quality findings
(:mod:`.findings`).
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

import mlflow_monitor.gate.drift.findings as fnd
from mlflow_monitor.gate.drift.calibration import (
    PERMUTATION_ROWS,
    Calibrator,
    default_calibrator,
    js_rows,
    permutation_counts,
    permutation_wasserstein,
    refine_js_threshold,
    replicates_for,
    scale_to,
)
from mlflow_monitor.gate.drift.column_types import infer_column_types
from mlflow_monitor.gate.drift.defaults import default_stattest
from mlflow_monitor.gate.drift.merge import SortedMerge
from mlflow_monitor.gate.drift.result import ColumnDrift, DriftResult
from mlflow_monitor.gate.drift.stattests import WASSERSTEIN
from mlflow_monitor.recipes.schema import DriftSettings
from mlflow_monitor.reference import ColumnSample, DataValidationError, ReferenceProfile
from mlflow_monitor.reference.null_tail import (
    DISCRETE_VALUES,
    TESTS_PER_COLUMN,
    is_discrete,
    new_category_replicates,
    split_alpha,
)

__all__ = ["DEFAULT_DRIFT_SHARE", "DISCRETE_VALUES", "TESTS_PER_COLUMN", "calibrated_column_drift",
           "column_drift", "compute_drift"]

DEFAULT_DRIFT_SHARE = 0.5  # Evidently DataDriftPreset(drift_share=0.5)
# DISCRETE_VALUES (a numerical column with at most this many distinct reference values,
# each seen more than once, is scored like a categorical one) and TESTS_PER_COLUMN (its
# distribution, its missing share, and its new categories or out-of-range values) live
# with the reference-side null (mlflow_monitor.reference.null_tail), which precomputes
# calibrations when a reference is logged.


@dataclasses.dataclass(frozen=True)
class _Side:
    """One cleaned side of one column and how many of its rows were missing."""

    sample: ColumnSample
    rows: int
    dtype: str

    @property
    def missing(self) -> int:
        return self.rows - self.sample.n


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


def _findings_base(ref: _Side, cur: _Side) -> dict[str, Any]:
    return {
        "reference_missing_share": ref.missing / ref.rows if ref.rows else 0.0,
        "current_missing_share": cur.missing / cur.rows if cur.rows else 0.0,
        "missing_share_increase": (cur.missing / cur.rows if cur.rows else 0.0)
        - (ref.missing / ref.rows if ref.rows else 0.0),
        "missing_p_value": fnd.missing_p_value(ref.missing, ref.rows, cur.missing, cur.rows),
        "reference_type": fnd.type_family(ref.dtype),
        "current_type": fnd.type_family(cur.dtype),
    }


def _evidently_findings(column_type: str, ref: _Side, cur: _Side) -> fnd.ColumnFindings:
    base = _findings_base(ref, cur)
    if column_type == "num" and ref.sample.is_numeric and cur.sample.is_numeric:
        base["out_of_range_share"], base["out_of_range_p_value"] = fnd.out_of_range(ref.sample, cur.sample)
    elif column_type == "cat":
        base["new_category_share"], base["new_categories"] = fnd.new_categories(ref.sample, cur.sample, cur.rows)
    return fnd.ColumnFindings(**base)


def calibrated_column_drift(name: str, column_type: str, ref: _Side, cur: _Side, *,
                            settings: DriftSettings, alpha: float, calibrator: Calibrator,
                            new_category_alpha: Optional[float] = None,
                            quality_alpha: Optional[float] = None) -> ColumnDrift:
    """Drift of one column against its calibrated threshold (per-test ``alpha``; the
    new-category test of a categorical column at ``new_category_alpha``, the missing-share
    and out-of-range tests at ``quality_alpha``, both default ``alpha``).

    Numerical columns are scored with the normed Wasserstein distance (missing values
    tested apart), unless the reference has at most :data:`DISCRETE_VALUES` distinct values,
    each seen more than once; those and categorical columns get the Jensen-Shannon distance
    over their values, categorical ones with missing values as a value of their own.
    ``threshold = max(calibrated, effect floor)``; drifted when ``score > threshold``.
    """
    r, c = ref.sample, cur.sample
    discrete = is_discrete(r) if column_type == "num" else True
    base = _findings_base(ref, cur)
    q_alpha = alpha if quality_alpha is None else quality_alpha
    base["quality_alpha"] = q_alpha
    significant = {"missing_share_increase": base["missing_p_value"] <= q_alpha}
    replicates = replicates_for(alpha)
    seed = int(r.digest()[:12], 16)
    if column_type == "num" and not discrete:
        method, floor = "wasserstein", settings.effect_floor.numerical
        score = WASSERSTEIN.score(r, c, SortedMerge(r, c))
        if r.n + c.n <= PERMUTATION_ROWS:
            calibrated = permutation_wasserstein(r, c, replicates=replicates, seed=seed ^ c.n).threshold(alpha)
        else:
            tail = calibrator.null_tail(r, current=c.n, replicates=replicates)
            calibrated = scale_to(tail.threshold(alpha), r.n, tail.bucket, c.n)
    else:
        method, floor = "jensenshannon", settings.effect_floor.categorical
        with_missing = column_type == "cat"
        rc, cc = r.counts(), c.counts()
        # a fixed order (a set of str is ordered by the per-process hash seed): the permutation
        # draws, so the thresholds, must not change from one process to the next
        keys = sorted(rc.keys() | cc.keys(), key=lambda k: (type(k).__name__, str(k)))
        ref_counts = [rc.get(k, 0) for k in keys] + ([ref.missing] if with_missing else [])
        cur_counts = [cc.get(k, 0) for k in keys] + ([cur.missing] if with_missing else [])
        r_arr, c_arr = np.asarray(ref_counts, dtype=np.float64), np.asarray(cur_counts, dtype=np.float64)
        score = float(js_rows(r_arr / r_arr.sum(), c_arr / c_arr.sum()))
        new_alpha = alpha if new_category_alpha is None else new_category_alpha
        if with_missing:  # the new-category threshold must be resolvable too, even when not needed
            replicates = max(replicates, replicates_for(new_alpha))
        tail = permutation_counts(r_arr, c_arr, replicates=replicates, seed=seed ^ int(c_arr.sum()),
                                  missing_index=len(keys) if with_missing else None)
        calibrated = tail.threshold(alpha)
        if score > floor:  # a call is possible: settle the threshold (below the floor it never matters)
            calibrated = refine_js_threshold(r_arr, c_arr, score, alpha, first=tail,
                                             seed=seed ^ int(c_arr.sum()) ^ 0x646973)
        if with_missing:
            share, examples = fnd.new_categories(r, c, cur.rows)
            new_replicates = new_category_replicates(new_alpha)
            if share > 0 and new_replicates > replicates:
                # only a share above 0 can be beyond chance: draw the finer null it needs then
                # (the same test as always drawing it); the distribution test keeps its own draw
                tail = permutation_counts(r_arr, c_arr, replicates=new_replicates,
                                          seed=seed ^ int(c_arr.sum()) ^ 0x6E6577, missing_index=len(keys))
            new_threshold = tail.threshold(new_alpha, "new_category")
            base.update(new_category_share=share, new_categories=examples, new_category_threshold=new_threshold,
                        new_category_alpha=new_alpha)
            significant["new_category_share"] = share > new_threshold
    if column_type == "num":
        base["out_of_range_share"], base["out_of_range_p_value"] = fnd.out_of_range(r, c)
        significant["out_of_range_share"] = base["out_of_range_p_value"] <= q_alpha
    threshold = max(calibrated, floor)
    findings = fnd.ColumnFindings(**base, significant=significant)
    return ColumnDrift(name, column_type, method, threshold, score, bool(score > threshold),
                       detection="calibrated", calibrated_threshold=calibrated, effect_floor=floor,
                       alpha=alpha, findings=findings)


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
    settings: DriftSettings | None = None,
    key_columns: Sequence[str] = (),
    calibrator: Calibrator | None = None,
) -> DriftResult:
    """Per-column drift of ``current`` against ``reference``.

    ``settings`` (a recipe's :class:`~mlflow_monitor.recipes.schema.DriftSettings`) picks
    the detection: ``None`` or ``method: evidently`` gives Evidently's DataDriftPreset
    exactly; ``method: calibrated`` gives calibrated thresholds with a dataset-level
    false-alarm rate of at most ``settings.alpha`` (see docs/drift.md), cached by
    ``calibrator`` (default: the process-wide one, with a file cache under
    ``$MLFLOW_MONITOR_HOME``). ``key_columns`` weigh ``settings.key_weight`` in
    ``weighted_drift_share`` and are what ``{no_drift_in: key_columns}`` checks.
    Data-quality findings are computed either way.

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
        return judged(col, kind, ref, cur)

    calibrated = settings is not None and settings.method == "calibrated"
    columns = [*num, *cat]  # Evidently's order: numerical, then categorical
    n_tests = TESTS_PER_COLUMN * len(columns) if calibrated else 0
    alpha = new_alpha = quality_alpha = None
    if calibrated and settings is not None:
        alpha, quality_alpha, new_alpha = split_alpha(settings.alpha, len(columns), len(cat),
                                                      settings.new_category_alpha_share,
                                                      settings.distribution_alpha_share)
    cal = calibrator if calibrator is not None else (default_calibrator() if calibrated else None)
    ref_rows = profile.rows if profile is not None else len(reference)  # type: ignore[arg-type]

    def sides(col: Any, kind: str, ref: ColumnSample, cur: ColumnSample) -> tuple[_Side, _Side]:
        if profile is not None:
            ref_dtype = profile.dtypes.get(str(col), "unknown")
        else:
            ref_dtype = str(reference[col].dtype)  # type: ignore[index]
        return _Side(ref, ref_rows, ref_dtype), _Side(cur, len(current), str(current[col].dtype))

    def judged(col: Any, kind: str, ref: ColumnSample, cur: ColumnSample) -> ColumnDrift:
        r, c = sides(col, kind, ref, cur)
        if calibrated:
            assert settings is not None and alpha is not None and cal is not None
            return calibrated_column_drift(str(col), kind, r, c, settings=settings, alpha=alpha, calibrator=cal,
                                           new_category_alpha=new_alpha, quality_alpha=quality_alpha)
        base = column_drift(str(col), kind, ref, cur)
        return dataclasses.replace(base, findings=_evidently_findings(kind, r, c))

    num_set = set(num)
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
        reference_rows=ref_rows,
        current_rows=len(current),
        skipped=tuple(skipped),
        method="calibrated" if calibrated else "evidently",
        alpha=settings.alpha if calibrated and settings is not None else None,
        n_tests=n_tests,
        new_category_alpha_share=settings.new_category_alpha_share if calibrated and settings is not None else None,
        distribution_alpha_share=settings.distribution_alpha_share if calibrated and settings is not None else None,
        key_columns=tuple(str(k) for k in key_columns),
        key_weight=settings.key_weight if settings is not None else DriftSettings().key_weight,
    )
