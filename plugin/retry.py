"""When a failed MLflow call is worth retrying, and how long to wait before the next try.

One rule and one backoff for every bounded MLflow caller: the metrics pipeline (a
store's outage), the bounded client (run and model-version tags).
"""

from __future__ import annotations

import time
from typing import Callable, Optional

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    MALFORMED_REQUEST,
    NOT_FOUND,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)

__all__ = ["PERMANENT_ERROR_CODES", "Backoff", "is_permanent"]

PERMANENT_ERROR_CODES = frozenset(ErrorCode.Name(code) for code in (
    INVALID_PARAMETER_VALUE,  # 400: a bad name or value
    BAD_REQUEST,  # 400 without an MLflow error body
    MALFORMED_REQUEST,  # 400
    RESOURCE_ALREADY_EXISTS,  # 400
    RESOURCE_DOES_NOT_EXIST,  # 404 from MLflow: no such run / model version
    NOT_FOUND,  # 404
    INVALID_STATE,  # the run is deleted or not active
))


def is_permanent(exc: BaseException) -> bool:
    """True when sending the same request again cannot succeed, so the data is set aside.

    The rule: a failure is permanent when the store understood the request and refused
    *what it carries* -- a bad name or value (HTTP 400: ``INVALID_PARAMETER_VALUE``,
    ``BAD_REQUEST``), something that does not exist (HTTP 404 with MLflow's
    ``RESOURCE_DOES_NOT_EXIST``), a run that is no longer active (``INVALID_STATE``) -- or
    the value could not even be encoded (``TypeError``/``ValueError``, ``OverflowError`` for a
    number a column or ``float()`` cannot hold, such as a step of ``2**70`` in sqlite). Retrying such a
    request would block everything queued behind it for that store; setting it aside
    (the pipeline isolates the refused points by bisection) lets the rest through.

    Everything else is transient, and the data is kept and retried with :class:`Backoff`:
    connection errors and timeouts, HTTP 5xx, 408 and 429, and also HTTP 401/403
    (``UNAUTHENTICATED``, ``PERMISSION_DENIED``): credentials and permissions get fixed
    without any change to the data, and setting metrics aside on a 401 would drop a whole
    run's history into the rejected file. A 404 without an MLflow error body
    (``ENDPOINT_NOT_FOUND``) comes from something in front of the store (a proxy, a wrong
    base path), not from the store, and is transient too.
    """
    if isinstance(exc, MlflowException):
        return exc.error_code in PERMANENT_ERROR_CODES
    return isinstance(exc, (TypeError, ValueError, OverflowError))


class Backoff:
    """The wait before the next try: ``initial_s``, times ``factor`` after each failure, at most ``max_s``.

    ``failed()`` schedules the next try, ``ready()`` says whether it is due, ``succeeded()``
    resets the wait and ``retry_now()`` makes the next try due at once (keeping the wait).
    ``factor=1`` (or ``max_s == initial_s``) gives a fixed cool-down. Not thread-safe: the
    owner serialises calls.
    """

    def __init__(self, initial_s: float, max_s: Optional[float] = None, factor: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_s = initial_s
        self.max_s = initial_s if max_s is None else max_s
        self.factor = factor
        self._clock = clock
        self._delay = initial_s
        self._due = 0.0

    def ready(self) -> bool:
        """The next try is due (no failure yet, or its wait is over)."""
        return self._clock() >= self._due

    def remaining_s(self) -> float:
        return max(0.0, self._due - self._clock())

    def failed(self) -> float:
        """A try failed: the next one is due after the current wait, which then grows. Returns that wait."""
        wait = self._delay
        self._due = self._clock() + wait
        self._delay = min(self._delay * self.factor, self.max_s)
        return wait

    def succeeded(self) -> None:
        self._delay = self.initial_s
        self._due = 0.0

    def retry_now(self) -> None:
        self._due = 0.0
