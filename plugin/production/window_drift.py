"""Drift of a merged window's row sample against the version's logged reference, with the
gate's drift engine (:func:`mlflow_monitor.gate.drift.compute_drift`) with the built-in
recipes' calibrated detection (:class:`~mlflow_monitor.recipes.schema.DriftSettings` defaults:
thresholds from the reference's own null at the window's size, dataset-level alpha 0.01)."""

from __future__ import annotations

import logging
from typing import Any, Optional

from mlflow_monitor.gate.drift import DriftResult, compute_drift
from mlflow_monitor.redaction import redact
from mlflow_monitor.recipes.schema import DriftSettings
from mlflow_monitor.reference import DataValidationError, ReferenceData
from mlflow_monitor.windows import WindowState

__all__ = ["drift_summary", "window_drift"]

_logger = logging.getLogger(__name__)

CALIBRATED = DriftSettings()  # the built-in recipes' detection


def window_drift(state: WindowState, reference: Optional[ReferenceData]) -> tuple[Optional[DriftResult], str]:
    """``(result, note)``: the drift of ``state``'s sample, or ``None`` and why not."""
    if reference is None:
        return None, "no reference logged for this version"
    current = state.sample_inputs()
    if current.empty:
        return None, "no rows in the window"
    known = set(reference.profile.columns) if reference.profile is not None else set(map(str, reference.frame.columns))
    skip = {reference.target, reference.prediction} - {None}
    cols = [c for c in current.columns if c in known and c not in skip and current[c].notna().any()]
    if not cols:
        return None, "no column of the window is in the reference"
    current = current[cols].infer_objects()
    try:
        if reference.profile is not None:
            result = compute_drift(None, current, profile=reference.profile, settings=CALIBRATED)
        else:
            result = compute_drift(reference.frame, current, settings=CALIBRATED)
    except (DataValidationError, ValueError, TypeError) as exc:
        note = redact(f"drift not computed: {exc}")
        _logger.warning("mlflow-monitor: window %s: %s", state.key.window_id, note)
        return None, note
    return result, "ok"


def drift_summary(result: Optional[DriftResult]) -> Optional[dict[str, Any]]:
    if result is None:
        return None
    return {"drift_share": result.drift_share, "n_drifted": result.n_drifted, "n_columns": result.n_columns,
            "dataset_drift": result.dataset_drift, "current_rows": result.current_rows,
            "reference_rows": result.reference_rows,
            "columns": [{"column": c.column, "type": c.column_type, "stattest": c.method,
                         "threshold": c.threshold, "score": c.score, "drifted": c.drifted} for c in result.columns]}
