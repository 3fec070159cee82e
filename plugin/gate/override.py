"""Break glass: a one-time, recorded way past the gate for one model version.

:func:`request_override` sets the version tags ``mlflow_monitor.gate.override`` (the
reason) and ``...override_user``; the next gated promotion of that version calls
:func:`consume_override`, which deletes them (one use), and records the decision.
"""

from __future__ import annotations

from typing import Any, Optional

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import append_audit
from mlflow_monitor.gate.errors import invalid_input
from mlflow_monitor.gate.provenance import current_user, utc_now

__all__ = ["consume_override", "request_override"]


def request_override(name: str, version: str, reason: str, *, client: Any = None,
                     user: Optional[str] = None) -> None:
    """Let the next gated promotion of ``version`` through, once.

    The request itself goes to the audit log. Raises ``MlflowException`` for an empty
    reason or a version that does not exist.
    """
    import mlflow

    reason = (reason or "").strip()
    if not reason:
        raise invalid_input("an override needs a non-empty reason, got ''")
    client = client or mlflow.MlflowClient()
    client.get_model_version(name, version)  # MLflow's own error when it does not exist
    who = user or current_user()
    client.set_model_version_tag(name, version, T.OVERRIDE_USER, who)
    client.set_model_version_tag(name, version, T.OVERRIDE, reason)
    append_audit({"model_name": name, "version": str(version), "verdict": "OVERRIDE_REQUESTED",
                  "override_reason": reason, "user": who, "timestamp": utc_now()})


def consume_override(store: Any, name: str, version: str) -> Optional[tuple[str, str]]:
    """The version's override reason and who set it, deleting the tags (one use); None
    when no override is set. ``store`` is the inner registry store."""
    mv = store.get_model_version(name, version)
    tags = mv.tags or {}
    reason = tags.get(T.OVERRIDE)
    if reason is None:
        return None
    who = tags.get(T.OVERRIDE_USER) or current_user()
    store.delete_model_version_tag(name, version, T.OVERRIDE)
    if T.OVERRIDE_USER in tags:
        store.delete_model_version_tag(name, version, T.OVERRIDE_USER)
    return reason, who
