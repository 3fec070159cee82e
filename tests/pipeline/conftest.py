"""Fixtures for the metrics-core tests: a scripted HTTP server standing in for an MLflow server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

import pytest


class ScriptedServer:
    """Answers every request with the next scripted ``(status, body)`` (default ``200, {}``); records requests."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, Optional[Any]]] = []
        self.requests: list[dict[str, Any]] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                stub.requests.append({"method": self.command, "path": self.path,
                                      "json": json.loads(body) if body else None})
                status, payload = stub.answers.pop(0) if stub.answers else (200, {})
                data = (payload if isinstance(payload, str) else json.dumps(payload)).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, status: int, body: Optional[Any] = None) -> None:
        self.answers.append((status, body))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def scripted_server():
    srv = ScriptedServer()
    yield srv
    srv.close()
