"""A window's performance from its joined labels: ``prod/accuracy``, ``prod/f1``,
``prod/roc_auc`` (classification) or ``prod/mae``, ``prod/rmse`` (regression).

Classification: the predicted label is the ``prediction`` column (else the first
prediction column); a score for ROC AUC is a column named ``probability``, ``proba``,
``score`` or ``prediction_1`` (the positive class of a two-column probability output);
F1 is binary for the positive label (``1``, ``True`` or ``"1"`` when present, else the
larger label) and macro-averaged for more than two labels, as the gate scores it.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import pandas as pd

__all__ = ["HIGHER_IS_BETTER", "PERFORMANCE_METRICS", "infer_task", "label_column_of", "score_window"]

PERFORMANCE_METRICS = {"classification": ("accuracy", "f1", "roc_auc"), "regression": ("mae", "rmse")}
HIGHER_IS_BETTER = {"accuracy": True, "f1": True, "roc_auc": True, "mae": False, "rmse": False}
_SCORE_COLUMNS = ("probability", "proba", "score", "prediction_1")


def infer_task(labels: pd.Series) -> str:
    """``regression`` for float labels that are not all whole numbers, else ``classification``."""
    if pd.api.types.is_float_dtype(labels) and not np.all(np.mod(labels.dropna().to_numpy(), 1) == 0):
        return "regression"
    return "classification"


def label_column_of(predictions: dict[str, str]) -> Optional[str]:
    """The predicted-label column among ``{name: column}`` (see the module docstring)."""
    if not predictions:
        return None
    if "prediction" in predictions:
        return predictions["prediction"]
    if "prediction_0" in predictions and "prediction_1" in predictions and len(predictions) == 2:
        return None  # a probability output: the label is the argmax
    return predictions[sorted(predictions)[0]]


def _positive(labels: list[Any]) -> Any:
    for candidate in (1, True, "1"):
        if candidate in labels:
            return candidate
    return sorted(labels, key=str)[-1]


def _aligned(y: pd.Series, p: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Predictions as the labels' type when they differ only in spelling (1 vs 1.0 vs "1")."""
    if y.dtype != p.dtype:
        try:
            if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_numeric_dtype(p):
                p = pd.to_numeric(p)
            if pd.api.types.is_integer_dtype(y) and pd.api.types.is_float_dtype(p) and np.all(np.mod(p, 1) == 0):
                p = p.astype(y.dtype)
            elif pd.api.types.is_object_dtype(y) and not pd.api.types.is_object_dtype(p):
                p = p.map(str)
        except (TypeError, ValueError):
            pass
    return y, p


def score_window(joined: pd.DataFrame, predictions: dict[str, str], task: str, label: str = "__label"
                 ) -> dict[str, float]:
    """``{metric: value}`` of the labelled rows ``joined`` (a ``label`` column plus the
    prediction columns ``predictions`` names). Empty when nothing can be scored."""
    data = joined[joined[label].notna()]
    if data.empty or not predictions:
        return {}
    y = data[label].reset_index(drop=True)
    out: dict[str, float] = {}
    if task == "regression":
        col = label_column_of(predictions) or predictions[sorted(predictions)[0]]
        p = pd.to_numeric(data[col], errors="coerce").reset_index(drop=True)
        ok = p.notna() & y.notna()
        if not ok.any():
            return {}
        yt, pp = y[ok].to_numpy(dtype=float), p[ok].to_numpy(dtype=float)
        out["mae"] = float(np.mean(np.abs(yt - pp)))
        out["rmse"] = float(math.sqrt(np.mean((yt - pp) ** 2)))
        return out
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    label_col = label_column_of(predictions)
    score = next((predictions[c] for c in _SCORE_COLUMNS if c in predictions), None)
    if label_col is None:  # two probability columns: the label is the likelier class
        probs = data[[predictions["prediction_0"], predictions["prediction_1"]]].to_numpy(dtype=float)
        p = pd.Series(np.argmax(probs, axis=1))
    else:
        p = data[label_col].reset_index(drop=True)
    ok = p.notna()
    y, p = _aligned(y[ok].reset_index(drop=True), p[ok].reset_index(drop=True))
    if y.empty:
        return {}
    labels = sorted(set(y.tolist()) | set(p.tolist()), key=str)
    out["accuracy"] = float(accuracy_score(y, p))
    if len(labels) <= 2:
        out["f1"] = float(f1_score(y, p, average="binary", pos_label=_positive(labels), zero_division=0))
    else:
        out["f1"] = float(f1_score(y, p, average="macro", zero_division=0))
    if score is not None and y.nunique() == 2:
        s = pd.to_numeric(data[score], errors="coerce").reset_index(drop=True)[ok.to_numpy()].reset_index(drop=True)
        if s.notna().all():
            out["roc_auc"] = float(roc_auc_score((y == _positive(sorted(set(y.tolist()), key=str))).astype(int), s))
    return out
