"""The one redactor: keeps credentials out of every log line, file and error text we write.

Three kinds of secret are removed:

- URL credentials, ``scheme://user:password@host`` -> ``scheme://***@host`` (tracking URIs,
  proxy URLs, anything quoted from an MLflow or slack-sdk exception);
- token-like strings: Slack tokens (``xoxb-...``), Slack webhook paths, and
  ``token=...`` / ``password: ...`` / ``secret=...`` / ``api_key=...`` pairs;
- every value registered with :func:`register_secret` (a bot token, a webhook URL and
  its path), wherever it appears.

Use :func:`redact` on any text before it is printed, logged, stored in a tag, a state
file or an exception message; :func:`redact_uri` for a URI shown or stored as such; and
:class:`SecretRedactor` as a logging filter on third-party loggers.

Every log record of the ``mlflow_monitor`` loggers (``mlflow_monitor.*``) is redacted when
it is created, message and traceback alike (:func:`guard_package_logs`, installed by
``import mlflow_monitor``), so text quoted from an MLflow or slack-sdk exception never
reaches a handler with a credential in it, whichever module logged it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Optional
from urllib.parse import urlparse, urlsplit, urlunsplit

__all__ = ["MASK", "REDACTED", "SecretRedactor", "guard_package_logs", "install_on", "redact", "redact_uri",
           "register_proxy_credentials", "register_secret", "strip_credentials"]

REDACTED = "[redacted]"  # a registered secret
MASK = "***"  # a credential found by pattern (URL user:password, token=...)

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)[^/\s:@]+(:[^/\s@]*)?@")
_TOKENS = re.compile(
    r"(xox[abposr]-[A-Za-z0-9-]+|hooks\.slack\.com/services/[A-Za-z0-9/]+|"
    r"(?i:(?:token|password|passwd|secret|api[_-]?key)\s*[=:]\s*)[^\s,;&'\"]+)"
)
_MIN_SECRET_LEN = 6

_lock = threading.Lock()
_secrets: set[str] = set()
_sorted: tuple[str, ...] = ()


def register_secret(value: Optional[str]) -> None:
    """Remember ``value`` as secret; for a URL also its path and its last path segment."""
    global _sorted
    if not value:
        return
    parts = {value}
    if value.startswith("http"):
        try:
            path = urlparse(value).path
        except ValueError:
            path = ""
        if path and path != "/":
            parts.add(path)
            last = path.rstrip("/").rsplit("/", 1)[-1]
            if len(last) >= 8:
                parts.add(last)
    with _lock:
        _secrets.update(p for p in parts if len(p) >= _MIN_SECRET_LEN)
        _sorted = tuple(sorted(_secrets, key=len, reverse=True))


def register_proxy_credentials() -> None:
    """Register the password of ``HTTPS_PROXY``/``HTTP_PROXY`` (clients log the proxy URL)."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        value = os.environ.get(name)
        if not value:
            continue
        try:
            password = urlparse(value).password
        except ValueError:
            password = None
        register_secret(password)


def redact(text: object) -> str:
    """``str(text)`` with URL credentials, token-like strings and registered secrets replaced."""
    out = str(text)
    for secret in _sorted:
        if secret in out:
            out = out.replace(secret, REDACTED)
    out = _URL_CREDENTIALS.sub(lambda m: m.group("scheme") + MASK + "@", out)
    return _TOKENS.sub(MASK, out)


def redact_uri(uri: Optional[str]) -> Optional[str]:
    """``uri`` with any ``user:password@`` removed (``None`` stays ``None``)."""
    if not uri:
        return uri
    return redact(uri)


def strip_credentials(url: str) -> str:
    """``url`` without its ``user:password@`` part, for a link people click (no ``***@`` left in it)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class SecretRedactor(logging.Filter):
    """Logging filter that rewrites a record's message (and traceback) with secrets redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


_installed: set[str] = set()


def install_on(*logger_names: str) -> None:
    """Put one :class:`SecretRedactor` on each named logger (idempotent)."""
    with _lock:
        for name in logger_names:
            if name not in _installed:
                logging.getLogger(name).addFilter(SecretRedactor())
                _installed.add(name)


_PACKAGE = "mlflow_monitor"
_guarded = False


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Rewrite one record's message and traceback with secrets redacted (in place)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: leave it to logging to report
        return record
    record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        record.exc_info = None
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


def guard_package_logs() -> None:
    """Redact every record of the ``mlflow_monitor`` logger tree at creation (idempotent).

    A filter on the ``mlflow_monitor`` logger would not see records of its children
    (logging consults only the emitting logger's filters), so the guard wraps the record
    factory instead, chaining whatever factory was installed before, and touches only
    records whose logger name is ``mlflow_monitor`` or starts with ``mlflow_monitor.``.
    """
    global _guarded
    with _lock:
        if _guarded:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            name = record.name
            if name == _PACKAGE or name.startswith(_PACKAGE + "."):
                _redact_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _guarded = True
