"""``CaptureMiddleware``: ASGI middleware around MLflow's scoring app.

For ``POST /invocations`` it times the request, takes the client's prediction ids from
the ``X-Prediction-Id`` header (comma-separated, one per input row), and when the answer
starts: a success is recorded with its inputs, predictions and ids (given ones when their
count matches the rows, else generated) and the ids go back in ``X-Prediction-Id``
(up to :data:`MAX_HEADER_IDS`; beyond that, generated ids come as
``X-Prediction-Id-Prefix: <p>``, the ids being ``<p>-0`` .. ``<p>-<n-1>``, and the
client's own are not echoed); any status >= 400 is recorded as an error. The answer
itself is MLflow's, byte for byte. At shutdown (ASGI lifespan) the capture is closed.
A capture with ``raw_inputs`` (the serving worker's forwarder) is given the request's
body as received (a :class:`~mlflow_monitor.production.forwarder.RawRequest`) instead of
the parsed frame; its capture process parses it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable, Optional

from mlflow_monitor.production.capture import Capture, row_count
from mlflow_monitor.production.capturing_model import CURRENT_REQUEST, RequestSlot
from mlflow_monitor.production.forwarder import RawRequest
from mlflow_monitor.redaction import redact

__all__ = ["ID_HEADER", "ID_PREFIX_HEADER", "MAX_HEADER_IDS", "CaptureMiddleware", "parse_id_header"]

_logger = logging.getLogger(__name__)

ID_HEADER = "x-prediction-id"
ID_PREFIX_HEADER = "x-prediction-id-prefix"
MAX_HEADER_IDS = 256
MAX_ID_LENGTH = 200
_ID_HEADER_KEY = ID_HEADER.encode()

Scope = dict[str, Any]
Message = dict[str, Any]


def parse_id_header(raw: Optional[bytes]) -> Optional[list[str]]:
    """Client ids from the header; ``None`` when absent or unusable (too long, empty)."""
    if not raw:
        return None
    try:
        ids = [p.strip() for p in raw.decode("latin-1").split(",")]
    except UnicodeDecodeError:
        return None
    if not ids or any(not i or len(i) > MAX_ID_LENGTH for i in ids):
        return None
    return ids


class CaptureMiddleware:
    """Wraps an ASGI app (see the module docstring)."""

    def __init__(self, app: Callable[..., Awaitable[None]], capture: Capture, *, close_timeout_s: float = 15.0) -> None:
        self.app = app
        self.capture = capture
        self.close_timeout_s = close_timeout_s
        self.raw_inputs = bool(getattr(capture, "raw_inputs", False))

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("path") != "/invocations" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        arrived = time.time()  # the request's window is the one it arrived in, however long it takes
        headers = dict(scope.get("headers") or ())
        given = parse_id_header(headers.get(_ID_HEADER_KEY))
        slot = RequestSlot(given_ids=given, arrived=arrived)
        token = CURRENT_REQUEST.set(slot)
        answered = False
        app_receive = receive
        if self.raw_inputs:
            slot.content_type = headers.get(b"content-type", b"").decode("latin-1")
            chunks: list[bytes] = []
            slot.body_chunks = chunks

            async def receive_captured() -> Message:
                message = await receive()
                body = message.get("body")
                if body:
                    chunks.append(body)
                return message

            app_receive = receive_captured

        async def send_captured(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and not answered:
                answered = True
                message = self._on_answer(message, slot, (time.perf_counter() - started) * 1000.0)
            await send(message)

        try:
            await self.app(scope, app_receive, send_captured)
        except BaseException:
            if not answered:
                self._safe(lambda: self.capture.record_error(500, (time.perf_counter() - started) * 1000.0,
                                                            timestamp=arrived))
            raise
        finally:
            CURRENT_REQUEST.reset(token)

    def _on_answer(self, message: Message, slot: RequestSlot, latency_ms: float) -> Message:
        status = int(message.get("status", 500))
        if status >= 400 or not slot.predicted:
            self._safe(lambda: self.capture.record_error(status, latency_ms, timestamp=slot.arrived))
            return message
        ids: list[str] = []
        generated = slot.given_ids is None

        def record() -> None:
            nonlocal ids, generated
            inputs = slot.inputs
            if self.raw_inputs:
                chunks = slot.body_chunks or []
                inputs = RawRequest(slot.content_type, chunks[0] if len(chunks) == 1 else b"".join(chunks),
                                    row_count(slot.inputs))
            try:
                ids = self.capture.record(inputs, slot.predictions, latency_ms=latency_ms, status=status,
                                          prediction_ids=slot.given_ids, timestamp=slot.arrived)
            except ValueError:  # the client's ids do not match the rows: generated ones are used
                generated = True
                ids = self.capture.record(inputs, slot.predictions, latency_ms=latency_ms, status=status,
                                          timestamp=slot.arrived)

        self._safe(record)
        if not ids:
            return message
        headers = list(message.get("headers") or [])
        if len(ids) <= MAX_HEADER_IDS:
            headers.append((ID_HEADER.encode(), ",".join(ids).encode("latin-1", "replace")))
        elif generated:
            headers.append((ID_PREFIX_HEADER.encode(), ids[0].rpartition("-")[0].encode("latin-1", "replace")))
        return {**message, "headers": headers}

    def _safe(self, fn: Callable[[], None]) -> None:
        """Capture must never change an answer: any failure is logged and dropped."""
        try:
            fn()
        except Exception as exc:
            _logger.warning("mlflow-monitor: capture skipped a request: %s", redact(str(exc)))

    async def _lifespan(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                        send: Callable[[Message], Awaitable[None]]) -> None:
        async def receive_watched() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.capture.close, self.close_timeout_s)
            return message

        await self.app(scope, receive_watched, send)
