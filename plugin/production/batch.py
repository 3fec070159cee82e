"""``log_predictions``: rows scored offline, through the same Capture and windows as serving."""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from mlflow_monitor.production.capture import Capture, new_prediction_ids
from mlflow_monitor.production.model_uri import resolve_model_version
from mlflow_monitor.windows import inputs_frame, parse_granularity, predictions_frame

__all__ = ["epoch_seconds", "log_predictions"]

_logger = logging.getLogger(__name__)


def epoch_seconds(timestamps: Any, rows: int) -> np.ndarray:
    """``timestamps`` (datetimes, ISO strings, or epoch seconds; naive = UTC; a scalar for
    every row) as float epoch seconds. ``ValueError`` names what was wrong."""
    if timestamps is None:
        raise ValueError("timestamps is None")
    values = timestamps if not np.isscalar(timestamps) and not isinstance(timestamps, pd.Timestamp) \
        else [timestamps] * rows
    if len(values) != rows:
        raise ValueError(f"got {len(values)} timestamps for {rows} rows; give one per row or a single one")
    s = pd.Series(values)
    try:
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            out = s.to_numpy(dtype=np.float64)
        else:
            dt = pd.to_datetime(s, utc=True)
            out = (dt - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"timestamps must be datetimes, ISO-8601 strings or epoch seconds: {exc}") from None
    if not np.isfinite(out).all():
        raise ValueError("timestamps must all be set (got NaN/NaT or an infinite value)")
    return out


def log_predictions(inputs: Any, predictions: Any, *, model_uri: str,
                    prediction_ids: Optional[Sequence[str]] = None, timestamps: Any = None,
                    window: str = "5m", timeout_s: float = 60.0, client: Any = None) -> list[str]:
    """Log a batch of scored rows of the version ``model_uri`` names (``models:/name/3`` or
    ``models:/name@alias``) as production traffic, into ``window`` windows by
    ``timestamps`` (default: now). Returns the prediction ids (given or generated).

    Bad input raises (``ValueError``/``TypeError``) before anything is captured. Windows
    that cannot be delivered within ``timeout_s`` stay on disk; the next Capture of this
    version (any process) delivers them.
    """
    import mlflow

    x = inputs_frame(inputs)
    y = predictions_frame(predictions, len(x))
    if len(x) == 0:
        raise ValueError("log_predictions got no rows")
    if prediction_ids is None:
        ids = new_prediction_ids(len(x))
    else:
        ids = [str(i) for i in prediction_ids]
        if len(ids) != len(x):
            raise ValueError(f"got {len(ids)} prediction ids for {len(x)} rows; give one id per row")
        if len(set(ids)) != len(ids):
            raise ValueError("prediction_ids must be unique within a batch")
    granularity = parse_granularity(window)
    client = client or mlflow.MlflowClient()
    name, version = resolve_model_version(model_uri, client)
    import time

    ts = epoch_seconds(timestamps, len(x)) if timestamps is not None else np.full(len(x), time.time())
    starts = np.floor(ts / granularity).astype(np.int64) * granularity
    capture = Capture(name, version, window=window)
    try:
        for start in np.unique(starts):
            idx = np.flatnonzero(starts == start)
            capture.record_batch(x.iloc[idx], y.iloc[idx], prediction_ids=[ids[i] for i in idx],
                                 timestamp=float(start))
        if not capture.flush(timeout_s, close_open=True):
            _logger.warning("mlflow-monitor: log_predictions for '%s' version %s: windows not delivered in "
                            "%.0f s wait in %s and are delivered by the next capture of this version",
                            name, version, timeout_s, capture.spool.root)
    finally:
        capture.close(timeout_s=5.0)
    return ids
