"""What a captured request looks like as frames: inputs and predictions as DataFrames.

Inputs may be a DataFrame, a list of row dicts, a dict of columns, a numpy array or a
list of lists (columns named ``"0"``, ``"1"``, ...). Predictions may be a Series, a
DataFrame, an array (1-D: one column ``prediction``; 2-D: ``prediction_0``, ...), a
list or a dict of columns. Column names are strings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["PREDICTION_COLUMN", "inputs_frame", "predictions_frame"]

PREDICTION_COLUMN = "prediction"


def _named(frame: pd.DataFrame) -> pd.DataFrame:
    if not all(isinstance(c, str) for c in frame.columns):
        frame = frame.rename(columns=str)
    if frame.columns.duplicated().any():
        dups = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise ValueError(f"captured column names must be unique, got duplicates {dups}")
    return frame


def inputs_frame(inputs: Any) -> pd.DataFrame:
    """``inputs`` as a DataFrame; ``TypeError`` names what was given and what is allowed."""
    if isinstance(inputs, pd.DataFrame):
        frame = inputs
    elif isinstance(inputs, pd.Series):
        frame = inputs.to_frame(name=str(inputs.name) if inputs.name is not None else "0")
    elif isinstance(inputs, np.ndarray):
        arr = inputs.reshape(-1, 1) if inputs.ndim == 1 else inputs.reshape(len(inputs), -1)
        frame = pd.DataFrame(arr)
    elif isinstance(inputs, dict):
        frame = pd.DataFrame({k: np.atleast_1d(np.asarray(v, dtype=object)).tolist() for k, v in inputs.items()}) \
            if any(isinstance(v, (list, tuple, np.ndarray, pd.Series)) for v in inputs.values()) \
            else pd.DataFrame([inputs])
    elif isinstance(inputs, (list, tuple)):
        if inputs and all(isinstance(r, dict) for r in inputs):
            frame = pd.DataFrame.from_records(list(inputs))
        else:
            frame = pd.DataFrame(list(inputs))
    else:
        raise TypeError("captured inputs must be a pandas DataFrame, a list of row dicts, a dict of "
                        f"columns or an array; got {type(inputs).__name__}")
    return _named(frame)


def predictions_frame(predictions: Any, rows: int) -> pd.DataFrame:
    """``predictions`` as a DataFrame of ``rows`` rows; ``ValueError`` when the lengths differ."""
    if isinstance(predictions, pd.DataFrame):
        frame = predictions.reset_index(drop=True)
    elif isinstance(predictions, pd.Series):
        frame = pd.DataFrame({PREDICTION_COLUMN: predictions.reset_index(drop=True)})
    elif isinstance(predictions, dict):
        frame = pd.DataFrame({k: np.asarray(v).reshape(-1).tolist() if np.ndim(v) else [v]
                              for k, v in predictions.items()})
    else:
        arr = np.asarray(predictions, dtype=object if isinstance(predictions, (list, tuple)) and predictions
                         and isinstance(predictions[0], dict) else None)
        if arr.dtype == object and arr.ndim == 1 and len(arr) and isinstance(arr[0], dict):
            frame = pd.DataFrame.from_records(list(arr))
        elif arr.ndim <= 1:
            frame = pd.DataFrame({PREDICTION_COLUMN: arr.reshape(-1)})
        else:
            flat = arr.reshape(len(arr), -1)
            frame = pd.DataFrame({f"{PREDICTION_COLUMN}_{i}": flat[:, i] for i in range(flat.shape[1])})
    if len(frame) != rows:
        raise ValueError(f"got {len(frame)} predictions for {rows} input rows; they must match one to one")
    return _named(frame)
