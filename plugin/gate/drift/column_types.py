"""Column types as Evidently's ``DataDefinition`` infers them from the current frame."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

__all__ = ["INTEGER_CARDINALITY_LIMIT", "infer_column_type", "infer_column_types"]

INTEGER_CARDINALITY_LIMIT = 10  # evidently.core.datasets.INTEGER_CARDINALITY_LIMIT


def infer_column_type(s: pd.Series) -> str:
    """Mirror of ``evidently.core.datasets.infer_column_type``: "num", "cat" or "other"."""
    name = s.dtype.name
    if name.startswith("float"):
        return "num"
    if name.startswith("int"):
        return "cat" if s.nunique() <= INTEGER_CARDINALITY_LIMIT else "num"
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
        kind = infer_column_type(current[col])
        {"num": inferred_num, "cat": inferred_cat, "other": skipped}[kind].append(col)
    num = list(numerical) if numerical is not None else inferred_num
    cat = list(categorical) if categorical is not None else inferred_cat
    if numerical is not None:
        skipped += [c for c in inferred_num if c not in num]
    if categorical is not None:
        skipped += [c for c in inferred_cat if c not in cat]
    return num, cat, skipped
