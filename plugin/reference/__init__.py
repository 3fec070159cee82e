"""Reference data: log it in the training run, load it at promotion time, and the
precomputed profile the drift verdict reads.

- :func:`log_reference` / :func:`load_reference` (:mod:`.artifacts`): the run artifacts;
- :class:`ReferenceProfile` (:mod:`.profile`): the stored per-column reference side;
- :class:`ColumnSample` (:mod:`.column`): one cleaned side of one column.

This is a core package: it imports nothing from the gate (the gate imports it).
"""

from mlflow_monitor.reference.artifacts import (
    REFERENCE_ARTIFACT_DIR,
    ReferenceData,
    ReferenceInfo,
    load_reference,
    log_reference,
)
from mlflow_monitor.reference.column import ColumnSample
from mlflow_monitor.reference.errors import DataValidationError, ReferenceNotFoundError
from mlflow_monitor.reference.profile import ReferenceProfile

__all__ = [
    "REFERENCE_ARTIFACT_DIR",
    "ColumnSample",
    "DataValidationError",
    "ReferenceData",
    "ReferenceInfo",
    "ReferenceNotFoundError",
    "ReferenceProfile",
    "load_reference",
    "log_reference",
]
