"""Break glass, with four eyes: request, approve, use once.

1. **Request** (:func:`request_override`): anyone who may promote the model sets the version
   tag ``mlflow_monitor.gate.override`` to a reason -- in the UI, over REST, or with
   ``mlflow-monitor override request``. The ``monitor:`` store records who asked
   (``override_user``, from the authenticated identity, never from the client) and audits
   ``override_requested``.
2. **Approve** (:func:`approve_override`): a different person with the approver role
   (MANAGE or admin) sets ``mlflow_monitor.gate.override_approve`` (any value; it is not
   stored) or runs ``mlflow-monitor override approve``. The store writes
   ``override_approved_by`` and audits ``override_approved``.
3. **Use** (:func:`consume_override`): the next gated promotion of that version goes through
   without evaluation; the override tags are deleted (one use) and ``override_used`` is
   audited with the promoter, the requester and the approver. An override that is not
   approved is never used: the promotion is evaluated as usual.

A new request replaces the old one and needs a new approval.
"""

from __future__ import annotations

from typing import Any, Optional

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.authority import Identity, audit_event, current_identity, refusal, roles_for, who
from mlflow_monitor.gate.errors import invalid_input
from mlflow_monitor.gate.escaping import safe_text
from mlflow_monitor.gate.provenance import utc_now

__all__ = ["OVERRIDE_STATE_KEYS", "approve_override", "consume_override", "request_override"]

#: Version tags that hold an override's state (all deleted when it is used).
OVERRIDE_STATE_KEYS = (T.OVERRIDE, T.OVERRIDE_USER, T.OVERRIDE_REQUESTED_AT, T.OVERRIDE_APPROVED_BY)


def _set(inner: Any, name: str, version: str, key: str, value: str) -> None:
    from mlflow.entities.model_registry import ModelVersionTag

    inner.set_model_version_tag(name, version, ModelVersionTag(key, value))


def request_override(inner: Any, name: str, version: str, reason: str, *,
                     identity: Optional[Identity] = None, store_uri: Optional[str] = None) -> None:
    """Record a request to let the next gated promotion of ``version`` through, once.

    ``inner`` is the wrapped registry store. Raises ``MlflowException``: 400 for an empty
    reason or a missing version, 403 for a caller who may not promote the model.
    """
    identity = identity or current_identity()
    reason = (reason or "").strip()
    if not reason:
        raise invalid_input("an override needs a non-empty reason, got ''")
    mv = inner.get_model_version(name, version)  # MLflow's own error when it does not exist
    roles = roles_for(identity, name)
    target = f"version {version}"
    if not roles.promote:
        why = (f"requesting an override on model '{safe_text(name)}' needs EDIT on the model; "
               f"{who(identity)} has {roles.permission}")
        audit_event("refused_write", identity, model_name=name, version=version, target=T.OVERRIDE,
                    reason=why, store_uri=store_uri)
        raise refusal("an override request needs EDIT on the model", why + ". Nothing was changed.")
    if T.OVERRIDE_APPROVED_BY in (mv.tags or {}):
        inner.delete_model_version_tag(name, version, T.OVERRIDE_APPROVED_BY)
    _set(inner, name, version, T.OVERRIDE_USER, identity.label)
    _set(inner, name, version, T.OVERRIDE_REQUESTED_AT, utc_now())
    _set(inner, name, version, T.OVERRIDE, reason)
    audit_event("override_requested", identity, model_name=name, version=version, target=target,
                reason=reason, store_uri=store_uri)


def approve_override(inner: Any, name: str, version: str, *, note: str = "",
                     identity: Optional[Identity] = None, store_uri: Optional[str] = None) -> str:
    """Approve the pending override of ``version``; returns the requester.

    Raises ``MlflowException``: 400 when no override is pending, 403 when the caller is not
    an approver or is the requester (four eyes).
    """
    identity = identity or current_identity()
    tags = inner.get_model_version(name, version).tags or {}
    if T.OVERRIDE not in tags:
        raise invalid_input(f"mlflow-monitor: no override request is pending on model "
                            f"'{safe_text(name)}' version {safe_text(version)}; request one first "
                            f"(tag {T.OVERRIDE} = reason, or mlflow-monitor override request)")
    requester = tags.get(T.OVERRIDE_USER)
    roles = roles_for(identity, name)
    if not roles.may_approve(identity, requester):
        if identity.user is None:
            why = (f"approving an override needs an authenticated approver; {who(identity)} cannot "
                   "approve (an operator runs `mlflow-monitor override approve` against the store)")
        elif not roles.own_policy:
            why = (f"approving an override on model '{safe_text(name)}' needs MANAGE on the model "
                   f"(or an admin); {who(identity)} has {roles.permission}")
        else:
            why = (f"the override was requested by '{safe_text(requester or '?')}'; a different "
                   "person must approve it (four eyes)")
        audit_event("refused_write", identity, model_name=name, version=version,
                    target=T.OVERRIDE_APPROVE, reason=why, requested_by=requester, store_uri=store_uri)
        raise refusal("this override approval is not allowed", why + ". Nothing was changed.")
    _set(inner, name, version, T.OVERRIDE_APPROVED_BY, str(identity.user))
    audit_event("override_approved", identity, model_name=name, version=version,
                target=f"version {version}", reason=tags.get(T.OVERRIDE, ""), requested_by=requester,
                note=note, store_uri=store_uri)
    return str(requester)


def consume_override(store: Any, name: str, version: str, *, target: Optional[str] = None,
                     store_uri: Optional[str] = None) -> Optional[tuple[str, str]]:
    """Use the version's approved override: ``(reason with who asked and who approved,
    the promoter)``, deleting its tags (one use). None when none is set or it is not
    approved yet. ``store`` is the inner registry store."""
    tags = store.get_model_version(name, version).tags or {}
    reason = tags.get(T.OVERRIDE)
    approver = tags.get(T.OVERRIDE_APPROVED_BY)
    if reason is None or not approver:
        return None
    requester = tags.get(T.OVERRIDE_USER) or "?"
    for key in OVERRIDE_STATE_KEYS:
        if key in tags:
            store.delete_model_version_tag(name, version, key)
    promoter = current_identity()
    audit_event("override_used", promoter, model_name=name, version=version, target=target,
                reason=reason, requested_by=requester, approved_by=approver, store_uri=store_uri)
    return f"{reason} [requested by {requester}, approved by {approver}]", promoter.label
