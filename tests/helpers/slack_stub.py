"""A loopback Slack API stub: real HTTP on 127.0.0.1 for real slack-sdk clients.

It implements ``chat.postMessage`` (Web API, bearer token) and incoming webhooks
(``/services/...``), validates payloads the way Slack does, records what it
accepted, and can inject faults (429 with ``Retry-After``, 5xx, hangs past the
client timeout, dropped connections) for the next N requests or until told to
stop. Used by the test suite and by ``examples/demo_slack.py``::

    with SlackStub() as stub:
        client = WebClient(token=stub.token, base_url=stub.api_url)
        client.chat_postMessage(channel="#ml-alerts", text="hi")
        assert stub.messages[0]["text"] == "hi"
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse

# Slack's documented limits (https://docs.slack.dev/reference/block-kit/blocks)
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40000
# Notifier settings for talking to the stub: short retry backoff and timeouts (tests, demo).
FAST_SETTINGS = {"retry_backoff_s": 0.01, "timeout_s": 2.0, "flush_timeout_s": 10.0}

KNOWN_BLOCK_TYPES = {
    "actions", "context", "divider", "file", "header", "image", "input",
    "markdown", "rich_text", "section", "video",
}


@dataclasses.dataclass
class _Fault:
    kind: str  # "status" | "hang" | "disconnect"
    remaining: Optional[int]  # None = until cleared
    status: int = 500
    retry_after: Optional[int] = None
    seconds: float = 0.0


class BlocksError(ValueError):
    """A Block Kit payload Slack would reject with ``invalid_blocks``."""


def validate_blocks(blocks: Any) -> None:
    """Raise :class:`BlocksError` where Slack answers ``invalid_blocks``."""
    if not isinstance(blocks, list):
        raise BlocksError("blocks must be an array")
    if len(blocks) > MAX_BLOCKS:
        raise BlocksError(f"must provide an array of no more than {MAX_BLOCKS} items (got {len(blocks)})")
    for i, block in enumerate(blocks):
        if not isinstance(block, dict) or block.get("type") not in KNOWN_BLOCK_TYPES:
            raise BlocksError(f"block {i}: unknown block type {block.get('type') if isinstance(block, dict) else block!r}")
        kind = block["type"]
        if kind == "section":
            if "text" not in block and "fields" not in block:
                raise BlocksError(f"block {i}: section must have text or fields")
            if "text" in block:
                _check_text(block["text"], MAX_SECTION_TEXT, f"block {i} text")
            fields = block.get("fields", [])
            if len(fields) > MAX_SECTION_FIELDS:
                raise BlocksError(f"block {i}: more than {MAX_SECTION_FIELDS} fields")
            for j, field in enumerate(fields):
                _check_text(field, MAX_FIELD_TEXT, f"block {i} field {j}")
        elif kind == "header":
            _check_text(block.get("text"), MAX_HEADER_TEXT, f"block {i} header", plain_only=True)
        elif kind == "context":
            elements = block.get("elements") or []
            if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
                raise BlocksError(f"block {i}: context needs 1..{MAX_CONTEXT_ELEMENTS} elements")
            for j, el in enumerate(elements):
                if el.get("type") in ("plain_text", "mrkdwn"):
                    _check_text(el, MAX_SECTION_TEXT, f"block {i} element {j}")


def _check_text(obj: Any, limit: int, where: str, plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        raise BlocksError(f"{where}: missing text object")
    if plain_only and obj["type"] != "plain_text":
        raise BlocksError(f"{where}: must be plain_text")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        raise BlocksError(f"{where}: text must not be empty")
    if len(text) > limit:
        raise BlocksError(f"{where}: must be less than {limit + 1} characters (got {len(text)})")


class SlackStub:
    """Threaded Slack API stub on a free loopback port; a context manager."""

    def __init__(
        self,
        token: str = "xoxb-stub-0000-secret-token",
        channels: Optional[dict[str, str]] = None,
    ) -> None:
        self.token = token
        # channel name or id -> channel id
        self.channels = dict(channels or {"#ml-alerts": "C0ALERTS", "#ml-gate": "C0GATE"})
        for cid in list(self.channels.values()):
            self.channels.setdefault(cid, cid)
        self.webhook_path = f"/services/T0STUB/B0STUB/{secrets.token_hex(12)}"
        self.webhook_channel = "C0WEBHOOK"
        self.messages: list[dict[str, Any]] = []  # accepted messages
        self.requests: list[dict[str, Any]] = []  # every request, with the answer given
        self.arrivals = 0  # requests that arrived (recorded in `requests` once answered)
        self._faults: list[_Fault] = []
        self._released = threading.Event()
        self._released.set()
        self.max_hold_s = 30.0  # a held request waits at most this long
        self._cond = threading.Condition()
        self._ts_counter = 0
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    # ---- lifecycle -------------------------------------------------------------
    def start(self) -> "SlackStub":
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="slack-stub", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "SlackStub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "stub not started"
        return self._server.server_address[1]

    @property
    def api_url(self) -> str:
        """``base_url`` for ``WebClient`` (ends with a slash, like https://slack.com/api/)."""
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.webhook_path}"

    # ---- fault injection -------------------------------------------------------
    def fail_next(self, n: Optional[int] = 1, status: int = 500, retry_after: Optional[int] = None) -> None:
        """Answer the next ``n`` requests (None: all, until :meth:`clear_faults`) with ``status``."""
        with self._cond:
            self._faults.append(_Fault("status", n, status=status, retry_after=retry_after))

    def hang_next(self, n: Optional[int] = 1, seconds: float = 1.0) -> None:
        """Hold the next ``n`` requests ``seconds`` (past a client's timeout), then drop them unposted."""
        with self._cond:
            self._faults.append(_Fault("hang", n, seconds=seconds))

    def disconnect_next(self, n: Optional[int] = 1) -> None:
        """Close the connection without answering the next ``n`` requests."""
        with self._cond:
            self._faults.append(_Fault("disconnect", n))

    def hold(self) -> None:
        """Park every request until :meth:`release` (at most ``max_hold_s``): Slack stalls."""
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    def clear_faults(self) -> None:
        with self._cond:
            self._faults.clear()

    def _take_fault(self) -> Optional[_Fault]:
        with self._cond:
            while self._faults:
                fault = self._faults[0]
                if fault.remaining is None:
                    return fault
                if fault.remaining > 0:
                    fault.remaining -= 1
                    return fault
                self._faults.pop(0)
            return None

    # ---- recording -------------------------------------------------------------
    def _arrived(self) -> None:
        with self._cond:
            self.arrivals += 1
            self._cond.notify_all()

    def wait_for_arrivals(self, n: int, timeout: float = 5.0) -> int:
        """Wait (bounded) until ``n`` requests arrived (answered or parked by :meth:`hold`)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.arrivals < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return self.arrivals

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait (bounded) until ``n`` messages were accepted; return them all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.messages)

    def _record(self, entry: dict[str, Any], message: Optional[dict[str, Any]] = None) -> None:
        with self._cond:
            self.requests.append(entry)
            if message is not None:
                self.messages.append(message)
            self._cond.notify_all()

    def _next_ts(self) -> str:
        with self._cond:
            self._ts_counter += 1
            return f"{int(time.time())}.{self._ts_counter:06d}"

    # ---- Slack semantics -------------------------------------------------------
    def _check_message(self, payload: dict[str, Any]) -> Optional[str]:
        text = payload.get("text")
        blocks = payload.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                return "invalid_blocks_format"
            payload["blocks"] = blocks
        if not text and not blocks:
            return "no_text"
        if text is not None and len(str(text)) > MAX_MESSAGE_TEXT:
            return "msg_too_long"
        if blocks is not None:
            try:
                validate_blocks(blocks)
            except BlocksError:
                return "invalid_blocks"
        return None

    def handle_post_message(self, headers: dict[str, str], payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        auth = headers.get("authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else payload.get("token")
        if not token:
            return 200, {"ok": False, "error": "not_authed"}
        if token != self.token:
            return 200, {"ok": False, "error": "invalid_auth"}
        channel_id = self.channels.get(str(payload.get("channel", "")))
        if channel_id is None:
            return 200, {"ok": False, "error": "channel_not_found"}
        error = self._check_message(payload)
        if error:
            return 200, {"ok": False, "error": error}
        ts = self._next_ts()
        return 200, {"ok": True, "channel": channel_id, "ts": ts,
                     "message": {"text": payload.get("text"), "ts": ts, "thread_ts": payload.get("thread_ts")}}

    def handle_webhook(self, path: str, payload: Optional[dict[str, Any]]) -> tuple[int, str]:
        if path != self.webhook_path:
            return 404, "no_service"
        if payload is None:
            return 400, "invalid_payload"
        error = self._check_message(payload)
        if error == "no_text":
            return 400, "no_text"
        if error:
            return 400, "invalid_blocks" if error.startswith("invalid_blocks") else error
        return 200, "ok"


def _make_handler(stub: SlackStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 (http.server naming)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            path = urlparse(self.path).path
            entry: dict[str, Any] = {"path": path, "time": time.monotonic()}

            stub._arrived()
            stub._released.wait(stub.max_hold_s)
            fault = stub._take_fault()
            if fault is not None and fault.kind == "hang":
                entry["status"] = "timeout"
                stub._record(entry)  # recorded on arrival; nothing is posted
                time.sleep(fault.seconds)
                self.close_connection = True
                self._answer(504, b"upstream_timeout", "text/plain")
                return
            if fault is not None and fault.kind == "disconnect":
                entry["status"] = "disconnect"
                stub._record(entry)
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault is not None:
                entry["status"] = fault.status
                stub._record(entry)
                body = json.dumps({"ok": False, "error": "ratelimited" if fault.status == 429 else "internal_error"})
                extra = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
                self._answer(fault.status, body.encode(), "application/json", extra)
                return

            payload = _parse_body(raw, headers.get("content-type", ""))
            if path.startswith("/api/chat.postMessage"):
                status, answer = stub.handle_post_message(headers, payload or {})
                entry.update(status=status, answer=answer)
                message = None
                if answer.get("ok"):
                    message = {"api": "chat.postMessage", "channel": answer["channel"], "ts": answer["ts"],
                               "text": payload.get("text"), "blocks": payload.get("blocks"),
                               "thread_ts": payload.get("thread_ts")}
                stub._record(entry, message)
                self._answer(status, json.dumps(answer).encode(), "application/json")
            elif path.startswith("/services/"):
                status, text = stub.handle_webhook(path, payload)
                entry.update(status=status, answer=text)
                message = None
                if status == 200:
                    message = {"api": "webhook", "channel": stub.webhook_channel, "ts": None,
                               "text": payload.get("text"), "blocks": payload.get("blocks"), "thread_ts": None}
                stub._record(entry, message)
                self._answer(status, text.encode(), "text/html")
            else:
                entry.update(status=404, answer="unknown_method")
                stub._record(entry)
                self._answer(404, json.dumps({"ok": False, "error": "unknown_method"}).encode(), "application/json")

        def _answer(self, status: int, body: bytes, ctype: str, extra: Optional[dict[str, str]] = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", f"{ctype}; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout): nothing to answer
                self.close_connection = True

    return Handler


def _parse_body(raw: bytes, content_type: str) -> Optional[dict[str, Any]]:
    try:
        if "application/json" in content_type:
            value = json.loads(raw.decode("utf-8") or "{}")
            return value if isinstance(value, dict) else None
        if "application/x-www-form-urlencoded" in content_type:
            return {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}
        return json.loads(raw.decode("utf-8"))  # webhooks also accept a bare JSON body
    except (ValueError, UnicodeDecodeError):
        return None
