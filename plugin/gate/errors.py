"""The ``MlflowException`` s the gate raises, each with the error code (HTTP status) it maps to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE, RESOURCE_CONFLICT

if TYPE_CHECKING:  # pragma: no cover
    from mlflow_monitor.gate.decision import Decision

__all__ = ["invalid_input", "promotion_blocked", "promotion_busy"]


def invalid_input(message: str) -> MlflowException:
    """Bad input from the caller (HTTP 400, ``INVALID_PARAMETER_VALUE``)."""
    return MlflowException(message, error_code=INVALID_PARAMETER_VALUE)


def promotion_blocked(decision: "Decision") -> MlflowException:
    """The gate blocked ``decision``'s promotion; the message lists why.

    BAD_REQUEST, not INVALID_STATE: MLflow 3.17 maps INVALID_STATE to HTTP 500, and a
    blocked promotion is the caller's to fix (HTTP 400, shown as such in the UI).
    """
    return MlflowException(decision.message(), error_code=BAD_REQUEST)


def promotion_busy(message: str) -> MlflowException:
    """Another promotion of the same model and target holds the lock (HTTP 409)."""
    return MlflowException(message, error_code=RESOURCE_CONFLICT)
