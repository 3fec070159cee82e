"""Who made a gate decision, and when."""

from __future__ import annotations

import datetime as _dt
import getpass
import os

__all__ = ["current_user", "utc_now"]


def utc_now() -> str:
    """Now, UTC, ISO-8601 with microseconds (``2024-05-01T12:00:00.000000Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_user() -> str:
    """The REST caller (``mlflow server`` with auth) if any, else ``MLFLOW_MONITOR_USER``,
    else the OS user."""
    try:
        import flask

        if flask.has_request_context():
            auth = flask.request.authorization
            if auth is not None and auth.username:
                return str(auth.username)
            return f"rest:{flask.request.remote_addr or 'unknown'}"
    except Exception:
        pass
    user = os.environ.get("MLFLOW_MONITOR_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
