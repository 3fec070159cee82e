"""Who is asking, and what they may do to a gated model.

Identity is never taken from a tag, a header or a client's claim:

- inside ``mlflow server --app-name basic-auth``: the user MLflow's auth app authenticated;
- inside ``mlflow server`` without auth: nobody (``user`` None). Such a server cannot tell
  its callers apart, so no REST caller may change policy or approve an override;
  operators do that with the CLI against the store;
- in a client (``enable_gating()``, the CLI against a database URI): the OS account of the
  process. Client-side gating protects against mistakes, not against a hostile user: whoever
  can open the store directly can change anything in it.

Roles, from MLflow's permissions on the registered model:

- promoter: EDIT (or more) -- promotes; the gate evaluates;
- policy owner: MANAGE, or an admin -- sets or removes the recipe, renames or deletes a
  gated model;
- approver: a policy owner who is not the person who requested the override (four eyes).

In a client the OS user holds every role, except that it cannot approve its own request.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
from typing import Any, Optional

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

from mlflow_monitor.gate.escaping import safe_text

__all__ = ["Identity", "Roles", "audit_event", "current_identity", "os_user", "refusal",
           "require_policy_owner", "roles_for", "who"]

_logger = logging.getLogger(__name__)

SERVER_AUTH = "server-auth"
SERVER_ANONYMOUS = "server-anonymous"
CLIENT = "client"


@dataclasses.dataclass(frozen=True)
class Identity:
    """The caller: ``user`` None means an unauthenticated REST caller."""

    user: Optional[str]
    kind: str  # SERVER_AUTH | SERVER_ANONYMOUS | CLIENT

    @property
    def label(self) -> str:
        return self.user if self.user else "anonymous"


@dataclasses.dataclass(frozen=True)
class Roles:
    """What an identity may do on one registered model."""

    promote: bool
    own_policy: bool
    permission: str  # what it came from: an MLflow permission name, "client" or "none"

    def may_approve(self, identity: Identity, requester: Optional[str]) -> bool:
        """Approver: a policy owner who is not the requester (an anonymous requester is
        nobody's own request, but an anonymous approver never approves)."""
        return self.own_policy and identity.user is not None and identity.user != requester


def os_user() -> str:
    """The OS account of this process (its effective uid), not ``$USER``/``$LOGNAME``."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except Exception:
        return f"uid:{os.geteuid()}" if hasattr(os, "geteuid") else "unknown"


def current_identity() -> Identity:
    """The caller of the current registry operation (see the module doc)."""
    from mlflow_monitor.mlflow_compat import server_auth_user, server_backend_store_uri, server_request_active

    if server_request_active():
        user = server_auth_user()
        return Identity(user, SERVER_AUTH) if user else Identity(None, SERVER_ANONYMOUS)
    if server_backend_store_uri():  # inside `mlflow server`, but not serving a request
        return Identity(None, SERVER_ANONYMOUS)
    return Identity(os_user(), CLIENT)


def roles_for(identity: Identity, model_name: str) -> Roles:
    """``identity``'s roles on registered model ``model_name`` (fails closed)."""
    if identity.kind == CLIENT:
        return Roles(promote=True, own_policy=True, permission="client")
    if identity.kind == SERVER_ANONYMOUS:
        # MLflow without auth lets anyone write; the gate still evaluates every promotion.
        return Roles(promote=True, own_policy=False, permission="none (no auth on the server)")
    from mlflow_monitor.mlflow_compat import server_auth_grant

    grant = server_auth_grant(model_name)
    if grant is None:
        return Roles(promote=False, own_policy=False, permission="unknown")
    return Roles(promote=grant.can_update or grant.is_admin,
                 own_policy=grant.can_manage or grant.is_admin, permission=grant.permission)


def refusal(summary: str, detail: str) -> MlflowException:
    """HTTP 403 (``PERMISSION_DENIED``); the first line is a short summary (fits a toast)."""
    return MlflowException(f"mlflow-monitor refused: {summary}\n{detail}", error_code=PERMISSION_DENIED)


def require_policy_owner(identity: Identity, model_name: str, action: str, *, target: str,
                         store_uri: Optional[str], because: tuple[str, ...] = (),
                         version: Optional[str] = None) -> None:
    """Return when ``identity`` holds the policy owner role on ``model_name``; otherwise audit
    a ``refused_write`` and raise :func:`refusal` (HTTP 403). The one check behind every
    policy write: recipe changes, and renaming or deleting what the gate protects.

    ``action`` reads as the subject of the message ("a recipe change", "renaming");
    ``because`` says why the model is gated ("it has a recipe").
    """
    roles = roles_for(identity, model_name)
    if roles.own_policy:
        return
    model = f"model '{safe_text(model_name)}'"
    why = f" because {' and '.join(because)}" if because else ""
    reason = (f"{action} of {model} needs the policy owner role (MANAGE on the model, or an "
              f"admin){why}; {who(identity)} has {roles.permission}")
    audit_event("refused_write", identity, model_name=model_name,
                version=None if version is None else str(version), target=target, reason=reason,
                store_uri=store_uri)
    hint = ("this server runs without auth, so no REST caller may change policy: an operator "
            "runs `mlflow-monitor recipe set MODEL FILE` against the registry database"
            if identity.user is None else
            "ask a user with MANAGE on the model to do it (or to run `mlflow-monitor recipe set "
            "MODEL FILE` for a recipe)")
    raise refusal(f"{action} of {'gated ' if because else ''}{model} needs the policy owner role",
                  f"{reason}. Nothing was changed; {hint}.")


def who(identity: Identity) -> str:
    if identity.kind == SERVER_ANONYMOUS:
        return "an unauthenticated caller (this server runs without --app-name basic-auth)"
    return f"user '{safe_text(identity.label)}'"


_accepts_store_uri: Optional[bool] = None


def audit_event(event: str, identity: Identity, *, model_name: str, version: Optional[str] = None,
                target: Optional[str] = None, reason: str = "", store_uri: Optional[str] = None,
                **details: Any) -> None:
    """Append one trust record (``event``: policy_change, override_requested,
    override_approved, override_used, refused_write) to the gate's audit log. Never
    raises: an audit failure is logged (the decision it records still stands)."""
    global _accepts_store_uri
    from mlflow_monitor.gate.audit import append_audit
    from mlflow_monitor.gate.provenance import utc_now

    record = {"event": event, "user": identity.user, "identity": identity.kind,
              "model_name": model_name, "version": None if version is None else str(version),
              "target": target, "reason": reason, "timestamp": utc_now(), **details}
    try:
        if _accepts_store_uri is None:
            _accepts_store_uri = "store_uri" in inspect.signature(append_audit).parameters
        if _accepts_store_uri and store_uri:
            append_audit(record, store_uri=store_uri)  # type: ignore[call-arg]
        else:
            append_audit(record)
    except Exception as exc:
        from mlflow_monitor.redaction import redact

        _logger.warning("mlflow-monitor: could not append the %s audit record: %s: %s", event,
                        type(exc).__name__, redact(str(exc))[:300])
