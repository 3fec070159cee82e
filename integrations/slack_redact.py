"""Keep Slack secrets (bot token, webhook URL) out of every log line and error text.

slack-sdk logs the full webhook URL at DEBUG (``Sending a request - url: ...``) and in
its retry messages. The notifier hands its clients a logger that carries
:class:`SecretRedactor`, and the same filter sits on slack-sdk's own loggers.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlparse

REDACTED = "[redacted]"
SDK_LOGGER_NAME = "mlflow_monitor.integrations.slack.sdk"
_SDK_LOGGERS = ("slack_sdk.web.base_client", "slack_sdk.webhook.client", "slack_sdk.http_retry")

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember ``value`` (and, for a URL, its path and last segment) as secret."""
    if not value:
        return
    parts = {value}
    if value.startswith("http"):
        path = urlparse(value).path
        if path and path != "/":
            parts.add(path)
            last = path.rstrip("/").rsplit("/", 1)[-1]
            if len(last) >= 8:
                parts.add(last)
    with _lock:
        _secrets.update(p for p in parts if len(p) >= 6)


def register_proxy_credentials() -> None:
    """slack-sdk logs the proxy URL from ``HTTPS_PROXY``/``HTTP_PROXY``: keep its password secret."""
    import os

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        value = os.environ.get(name)
        if value:
            try:
                password = urlparse(value).password
            except ValueError:
                password = None
            if password:
                with _lock:
                    _secrets.add(password)


def redact(text: object) -> str:
    """``str(text)`` with every registered secret replaced by ``[redacted]``."""
    out = str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in out:
            out = out.replace(secret, REDACTED)
    return out


class SecretRedactor(logging.Filter):
    """Logging filter that rewrites a record's message with secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging to report
            return True
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


_installed = False


def sdk_logger() -> logging.Logger:
    """The logger given to slack-sdk clients; installs the redactor on it and slack-sdk's."""
    global _installed
    logger = logging.getLogger(SDK_LOGGER_NAME)
    with _lock:
        if not _installed:
            redactor = SecretRedactor()
            logger.addFilter(redactor)
            for name in _SDK_LOGGERS:
                logging.getLogger(name).addFilter(redactor)
            _installed = True
    return logger
