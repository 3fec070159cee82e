"""A merged window's ``prod/*`` metrics (logged at the window end, step = window index)."""

from __future__ import annotations

import hashlib
import math
import re
from typing import Any, Optional

from mlflow_monitor.windows import PREDICTION_COLUMN, WindowState

__all__ = ["MAX_CATEGORY_METRICS", "metric_name", "window_metrics"]

MAX_CATEGORY_METRICS = 20  # per categorical prediction column: the most frequent values
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
MAX_KEY_LENGTH = 250  # MLflow's limit on a metric key


def metric_name(*parts: Any) -> str:
    """``prod/<part>/<part>``; characters MLflow refuses in a key become ``_``, and a key
    longer than MLflow allows keeps its end (the statistic) and a hash of the rest."""
    key = "prod/" + "/".join(_UNSAFE.sub("_", str(p)).strip("/") or "_" for p in parts)
    if len(key) <= MAX_KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    head = f"prod/{digest}~"
    return head + key[len(key) - (MAX_KEY_LENGTH - len(head)):]


def _prediction_key(col: str, *stat: Any) -> str:
    """``prod/prediction/<stat>`` for the one-column ``prediction``, else with the column."""
    return metric_name("prediction", *stat) if col == PREDICTION_COLUMN else metric_name("prediction", col, *stat)


def _finite(out: dict[str, float], key: str, value: float) -> None:
    if value is not None and math.isfinite(value):
        out[key] = float(value)


def window_metrics(state: WindowState, drift: Optional[Any] = None) -> dict[str, float]:
    """Traffic, latency, errors, per-column missing share and numeric stats, prediction
    statistics and, with ``drift`` (a ``DriftResult``), the drift scores."""
    out: dict[str, float] = {
        "prod/requests": float(state.requests),
        "prod/rows": float(state.rows),
        "prod/sampled_rows": float(state.sampled_rows),
        "prod/errors": float(state.error_count),
        "prod/dropped": float(state.dropped),
    }
    if state.requests:
        out["prod/error_rate"] = state.error_count / state.requests
    for status, n in state.errors.items():
        out[metric_name("errors", status)] = float(n)
    if state.latency.count:
        for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
            out[f"prod/latency_{name}_ms"] = state.latency.quantile(q)
        out["prod/latency_mean_ms"] = state.latency.sum / state.latency.count
        out["prod/latency_max_ms"] = state.latency.max
    for col, st in state.columns.items():
        if state.sampled_rows:
            out[metric_name(col, "missing_share")] = st.missing(state.sampled_rows) / state.sampled_rows
        if st.numeric.count:
            _finite(out, metric_name(col, "mean"), st.numeric.mean)
            _finite(out, metric_name(col, "min"), st.numeric.min)
            _finite(out, metric_name(col, "max"), st.numeric.max)
    for col, st in state.predictions.items():
        if st.numeric.count:
            _finite(out, _prediction_key(col, "mean"), st.numeric.mean)
            _finite(out, _prediction_key(col, "std"), st.numeric.std)
            _finite(out, _prediction_key(col, "min"), st.numeric.min)
            _finite(out, _prediction_key(col, "max"), st.numeric.max)
        total = st.categories.total
        if total:
            top = sorted(st.categories.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:MAX_CATEGORY_METRICS]
            for value, n in top:
                out[_prediction_key(col, "share", value)] = n / total
    if drift is not None:
        out["prod/drift_share"] = float(drift.drift_share)
        out["prod/drifted_columns"] = float(drift.n_drifted)
        for c in drift.columns:
            _finite(out, metric_name(c.column, "drift_score"), c.score)
            out[metric_name(c.column, "drifted")] = 1.0 if c.drifted else 0.0
    return out
