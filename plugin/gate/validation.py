"""Checks on the reference and current frames before the gate computes anything.

Each failure raises ``DataValidationError`` whose message names the column, the expected
and the actual value. The gate turns it into an ``MlflowException`` and blocks the
promotion without changing anything.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from mlflow_monitor.reference import DataValidationError

__all__ = ["DataValidationError", "validate_frames"]  # the error is mlflow_monitor.reference's


def validate_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    target: str | None = None,
    prediction: str | None = None,
    need_target: bool = False,
) -> None:
    """Raise ``DataValidationError`` on the first problem that makes a verdict meaningless.

    Checks, in order: both are non-empty DataFrames; every column in ``columns`` (default:
    all reference columns) is in both frames, once; no checked column is all NaN; each
    column has the same kind of dtype in both frames (integer and float are the same
    kind); numeric columns hold no +/-inf; and when ``need_target`` the current data has
    the ``target`` column with at least one value. ``target`` and ``prediction`` are
    checked like feature columns when both frames have them.
    """
    _check_frame(reference, "reference")
    _check_frame(current, "current")
    checked = _columns_to_check(reference, columns)

    if need_target:
        if target is None:
            raise DataValidationError(
                "a performance rule needs a target column, but no target column is configured"
            )
        if target not in current.columns:
            raise DataValidationError(
                f"a performance rule needs the target column {target!r}, "
                f"which is missing from the current data ({_unnamed(current)})"
            )
        if target not in checked:
            checked.append(target)
    for extra in (target, prediction):
        if extra is not None and extra not in checked and extra in reference.columns and extra in current.columns:
            checked.append(extra)

    missing = [c for c in checked if c not in current.columns]
    if missing:
        raise DataValidationError(
            f"{_plural(missing)} missing from the current data; expected every reference "
            f"column, {_unnamed(current, checked)}"
        )
    absent = [c for c in checked if c not in reference.columns and c != target]
    if absent:
        raise DataValidationError(
            f"{_plural(absent)} missing from the reference data; reference data has {_names(reference)}"
        )

    for name, frame in (("reference", reference), ("current", current)):
        for col in checked:
            if col in frame.columns and _occurrences(frame, col) > 1:
                raise DataValidationError(
                    f"column {col!r} appears {_occurrences(frame, col)} times in {name} data; "
                    f"expected once"
                )

    for col in checked:
        for name, frame in (("reference", reference), ("current", current)):
            if col in frame.columns and not frame[col].notna().any():
                raise DataValidationError(
                    f"column {col!r} is all NaN in {name} data ({len(frame)} rows); "
                    f"expected at least one value"
                )

    for col in checked:
        if col in reference.columns:
            ref_dtype, cur_dtype = reference[col].dtype, current[col].dtype
            if _kind(ref_dtype) != _kind(cur_dtype):
                raise DataValidationError(
                    f"column {col!r} is {ref_dtype} in reference but {cur_dtype} in current data"
                )

    for col in checked:
        for name, frame in (("reference", reference), ("current", current)):
            if col in frame.columns:
                n_inf = _count_inf(frame[col])
                if n_inf:
                    raise DataValidationError(
                        f"column {col!r} has {n_inf} inf value{'s' if n_inf > 1 else ''} in "
                        f"{name} data; expected finite numbers (drop or replace them)"
                    )


def _check_frame(frame: object, name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise DataValidationError(f"{name} data must be a pandas DataFrame, got {type(frame).__name__}")
    if frame.shape[1] == 0:
        raise DataValidationError(f"{name} data is empty: expected at least one column, got 0")
    if frame.shape[0] == 0:
        raise DataValidationError(f"{name} data is empty: expected at least one row, got 0")


def _columns_to_check(reference: pd.DataFrame, columns: Sequence[str] | None) -> list:
    if columns is None:
        return list(dict.fromkeys(reference.columns))
    if isinstance(columns, str):
        raise DataValidationError(
            f"columns must be a list of column names, got the string {columns!r}"
        )
    return list(dict.fromkeys(columns))


def _kind(dtype: object) -> str:
    """Coarse dtype family: int and float (nullable or not) are both "numeric"."""
    if isinstance(dtype, pd.CategoricalDtype):
        return _kind(dtype.categories.dtype)  # a category of strings is still strings
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if pd.api.types.is_string_dtype(dtype):  # object and pandas string dtypes
        return "string"
    return str(dtype)


def _count_inf(s: pd.Series) -> int:
    if not pd.api.types.is_float_dtype(s.dtype):
        return 0
    values = s.to_numpy(dtype=np.float64, na_value=np.nan) if s.dtype.kind != "f" else s.to_numpy()
    return int(np.isinf(values).sum())


def _occurrences(frame: pd.DataFrame, col: object) -> int:
    if frame.columns.is_unique:
        return 1
    return int((frame.columns == col).sum())


def _plural(cols: list) -> str:
    if len(cols) == 1:
        return f"column {cols[0]!r} is"
    return f"columns {[c for c in cols]!r} are"


def _unnamed(current: pd.DataFrame, expected: Sequence[str] = ()) -> str:
    """The current data's columns, naming only the expected ones it has: any other name is
    file contents (a CSV header row), possibly of a file the caller cannot read."""
    found = [c for c in dict.fromkeys(expected) if c in current.columns]
    have = f"; of the expected ones it has {found!r}" if expected else ""
    return f"current data has {current.shape[1]} columns{have} (other names not shown)"


def _names(frame: pd.DataFrame, limit: int = 20) -> str:
    names = [str(c) for c in frame.columns[:limit]]
    more = f" and {frame.shape[1] - limit} more" if frame.shape[1] > limit else ""
    return f"{names!r}{more}"
