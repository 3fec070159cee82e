"""Errors raised while logging, loading or reading reference and current data."""

from __future__ import annotations

__all__ = ["DataValidationError", "ReferenceNotFoundError"]


class ReferenceNotFoundError(LookupError):
    """The run has no reference logged with :func:`mlflow_monitor.reference.log_reference`."""


class DataValidationError(ValueError):
    """Reference or current data cannot be evaluated; the message names the column."""
