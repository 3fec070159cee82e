"""Who made a gate decision, and when."""

from __future__ import annotations

import datetime as _dt

__all__ = ["current_user", "utc_now"]


def utc_now() -> str:
    """Now, UTC, ISO-8601 with microseconds (``2024-05-01T12:00:00.000000Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_user() -> str:
    """Who is promoting: the user MLflow's auth app authenticated (``mlflow server
    --app-name basic-auth``), ``anonymous`` on a server without auth, else the OS user.
    Never a header, tag or environment variable a client sets (see :mod:`.authority`)."""
    from mlflow_monitor.gate.authority import current_identity

    return current_identity().label
