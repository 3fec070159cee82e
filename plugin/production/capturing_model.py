"""``CapturingModel``: a loaded pyfunc model whose ``predict`` hands its inputs and output
to the request's capture slot (filled by the serving middleware, read after the answer)."""

from __future__ import annotations

import contextvars
import dataclasses
from typing import Any, Optional

__all__ = ["CURRENT_REQUEST", "CapturingModel", "RequestSlot"]


@dataclasses.dataclass
class RequestSlot:
    """What one /invocations request captured (set on the predict thread)."""

    given_ids: Optional[list[str]] = None
    inputs: Any = None
    predictions: Any = None
    predicted: bool = False
    content_type: str = ""  # the raw request, kept for a capture that takes raw inputs
    body_chunks: Optional[list[bytes]] = None
    arrived: Optional[float] = None  # epoch seconds when the request arrived: its window's clock


CURRENT_REQUEST: contextvars.ContextVar[Optional[RequestSlot]] = contextvars.ContextVar(
    "mlflow_monitor_request", default=None)


class CapturingModel:
    """Delegates everything to the wrapped ``PyFuncModel``; ``predict`` also fills the
    current request's slot (contextvars follow ``asyncio.to_thread``)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def predict(self, data: Any, params: Optional[dict[str, Any]] = None) -> Any:
        out = self._model.predict(data, params=params)
        slot = CURRENT_REQUEST.get()
        if slot is not None:
            slot.inputs, slot.predictions, slot.predicted = data, out, True
        return out

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)
