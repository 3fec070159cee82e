"""The ``monitor:`` Model Registry store: gates promotions of any inner registry store.

``monitor:<inner-uri>`` wraps the store MLflow would build for ``<inner-uri>`` (sqlite,
postgresql, mysql, file, http(s), ...). Every call goes straight to the inner store
except these.

Gated (the promotion gate runs first):

- ``set_registered_model_alias``, ``set_prompt_alias`` -> target ``alias:<alias>``
- ``transition_model_version_stage`` -> target ``stage:<stage>``
- ``create_model_version``, ``copy_model_version`` -> target ``new_version`` (advisory:
  evaluated and recorded after creation, never blocks, see ``docs/gate.md``)

Guarded (gate-owned state, :mod:`.authority` for who may do what):

- tags under ``mlflow_monitor.`` on models, versions and prompts: refused (HTTP 403,
  audited ``refused_write``) unless it is the recipe set or removed by a policy owner
  (:mod:`.policy`), an override request or approval (:mod:`.override`) or a version's
  monitoring-run link with its proof (:mod:`.prod_run_link`); also refused in
  ``create_model_version(tags=...)``;
- the gate's block in a version description (``update_model_version``);
- ``rename_registered_model`` / ``delete_registered_model`` of a gated model and
  ``delete_model_version`` of a version holding a protected alias or stage: policy
  owners only.

The gate's own writes go to the inner store and never pass these checks.

The same builder serves the client (``mlflow.set_registry_uri``, ``MLFLOW_REGISTRY_URI``,
:func:`enable_gating`) and ``mlflow server --registry-store-uri monitor:...``, where a
blocked promotion becomes HTTP 400 (``BAD_REQUEST``).
"""

from __future__ import annotations

import inspect
import logging
import threading
import weakref
from typing import Any, Optional

_logger = logging.getLogger(__name__)

SCHEME = "monitor"
_PREFIX = SCHEME + ":"

_gating_lock = threading.Lock()
_uri_before_gating: dict[str, Optional[str]] = {}
_switched_clients: "weakref.WeakSet[Any]" = weakref.WeakSet()  # clients enable_gating re-pointed


def inner_uri_of(store_uri: str) -> str:
    """``monitor:sqlite:///x.db`` -> ``sqlite:///x.db``; raises on anything else."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    if not store_uri or not store_uri.startswith(_PREFIX):
        raise MlflowException(
            f"registry URI must start with '{_PREFIX}', got scheme "
            f"'{(store_uri or '').split(':', 1)[0]}'",
            error_code=INVALID_PARAMETER_VALUE,
        )
    inner = store_uri[len(_PREFIX):]
    if inner.startswith("//"):  # "monitor://sqlite:///x" is a common slip
        inner = inner[2:]
    if not inner or inner.startswith(_PREFIX):
        raise MlflowException(
            "registry URI 'monitor:<inner-uri>' needs an inner store URI that is not itself "
            "'monitor:', e.g. 'monitor:sqlite:///mlflow.db'",
            error_code=INVALID_PARAMETER_VALUE,
        )
    return inner


def build_monitor_registry_store(store_uri: str, tracking_uri: Optional[str] = None):
    """Entry point ``mlflow.model_registry_store: monitor``.

    Resolves the inner store through the store registry's *builder*, never
    ``get_store()``: MLflow calls this while holding its non-reentrant store lock. Turns
    on the installed notifiers (entry-point group ``mlflow_monitor.notifiers``, e.g.
    Slack), so verdicts are announced wherever the store runs.
    """
    from mlflow_monitor.events import enable_notifiers
    from mlflow_monitor.mlflow_compat import registry_store_builder

    inner_uri = inner_uri_of(store_uri)
    builder = registry_store_builder(inner_uri)
    params = set(inspect.signature(builder).parameters)
    if "tracking_uri" in params:
        inner = builder(store_uri=inner_uri, tracking_uri=tracking_uri)
    else:
        inner = builder(store_uri=inner_uri)
    enable_notifiers()  # never raises; a broken notifier is logged and skipped
    _read_proxied_artifacts_in_server()
    return MonitorRegistryStore(inner, inner_uri=inner_uri, tracking_uri=tracking_uri)


def _read_proxied_artifacts_in_server() -> None:
    """Inside ``mlflow server --serve-artifacts``, let server-side code read and write
    ``mlflow-artifacts:/`` URIs (run artifacts of the candidate: reference data, reports).

    MLflow resolves that scheme only against an HTTP tracking URI, which the server process
    does not have; the server's own handlers map it to ``--artifacts-destination``. We
    register the same mapping for the ``mlflow-artifacts`` scheme, once, only in a server
    process (its artifacts destination set). Clients are untouched.
    """
    from mlflow_monitor.mlflow_compat import register_artifact_repository, server_artifacts_destination

    if not server_artifacts_destination():
        return
    if not register_artifact_repository("mlflow-artifacts", _server_local_repo):
        _logger.warning("mlflow-monitor: this MLflow has no artifact repository registry to extend; "
                        "the gate cannot read mlflow-artifacts:/ URIs inside the server")


def _server_local_repo(artifact_uri: str, tracking_uri=None, registry_uri=None):
    """``mlflow-artifacts:/<path>`` -> the server's ``--artifacts-destination``/<path>."""
    import posixpath
    from urllib.parse import urlparse

    from mlflow_monitor.mlflow_compat import artifact_repository, server_artifacts_destination

    destination = server_artifacts_destination()
    if not destination:
        raise RuntimeError(f"cannot resolve {artifact_uri!r}: not inside an mlflow server "
                           "with --artifacts-destination")
    root = destination.rstrip("/")
    path = urlparse(artifact_uri).path.lstrip("/")
    return artifact_repository(posixpath.join(root, path) if path else root)


class MonitorRegistryStore:
    """Delegates to ``inner``; alias sets, stage transitions and new versions run the gate."""

    def __init__(self, inner: Any, *, inner_uri: str, tracking_uri: Optional[str]) -> None:
        from mlflow_monitor.gate.promotion import PromotionGate

        self._inner = inner
        self._inner_uri = inner_uri
        self._gate = PromotionGate(inner, inner_uri=inner_uri, tracking_uri=tracking_uri)

    @property
    def inner(self) -> Any:
        """The wrapped store (what the gate uses for its own registry writes)."""
        return self._inner

    @property
    def gate(self):
        return self._gate

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on this class: plain pass-through.
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __repr__(self) -> str:  # never print the inner URI: it may hold credentials
        return f"MonitorRegistryStore({type(self._inner).__name__})"

    # -- gated calls ----------------------------------------------------------------
    def set_registered_model_alias(self, name, alias, version):
        from mlflow_monitor.gate.decision import Target

        return self._promote(name, version, Target("alias", alias),
                             lambda: self._inner.set_registered_model_alias(name, alias, version))

    def set_prompt_alias(self, name, alias, version):
        from mlflow_monitor.gate.decision import Target

        return self._promote(name, version, Target("alias", alias),
                             lambda: self._inner.set_prompt_alias(name, alias, version))

    def transition_model_version_stage(self, name, version, stage, archive_existing_versions=False):
        from mlflow_monitor.gate.decision import Target
        from mlflow_monitor.mlflow_compat import canonical_stage

        return self._promote(
            name, version, Target("stage", canonical_stage(stage)),
            lambda: self._inner.transition_model_version_stage(
                name, version, stage, archive_existing_versions
            ),
        )

    def create_model_version(
        self,
        name,
        source,
        run_id=None,
        tags=None,
        run_link=None,
        description=None,
        local_model_path=None,
        model_id=None,
    ):
        tags, description = self._strip_owned_at_creation(name, tags, description)
        accepted = set(inspect.signature(self._inner.create_model_version).parameters)
        extra = {"local_model_path": local_model_path, "model_id": model_id}
        kwargs = {k: v for k, v in extra.items() if k in accepted}
        mv = self._inner.create_model_version(
            name, source, run_id, tags, run_link, description, **kwargs
        )
        self._gate.on_new_version(mv)
        return mv

    def _strip_owned_at_creation(self, name, tags, description):
        """Gate-owned tags (verdicts, an override) and the gate's description block never
        land on a new version: they are dropped and the drop is audited (``refused_write``).
        Dropping, not refusing, keeps MLflow's copy_model_version over REST working (it
        re-sends the source version's tags)."""
        from mlflow_monitor.gate.authority import audit_event, current_identity

        dropped = [t.key for t in tags or [] if _owned(t.key)]
        block = _gate_block(description or "")
        if block is not None:
            description = (description or "").replace(block, "").strip() or None
            dropped.append("description (the gate's block)")
        if dropped:
            audit_event("refused_write", current_identity(), model_name=name, version="new",
                        target="create_model_version",
                        reason=f"dropped gate-owned state at version creation: {', '.join(dropped)}",
                        store_uri=self._inner_uri)
            _logger.warning("mlflow-monitor: dropped gate-owned state from a new version of '%s': %s",
                            name, ", ".join(dropped))
            tags = [t for t in tags or [] if not _owned(t.key)]
        return tags, description

    def copy_model_version(self, src_mv, dst_name):
        """A new version of ``dst_name``: the source's gate-owned tags and description block
        (its verdicts, a pending override) are not carried over; the new-version check runs."""
        mv = self._inner.copy_model_version(src_mv, dst_name)
        owned = [k for k in (mv.tags or {}) if _owned(k)]
        for key in owned:
            self._inner.delete_model_version_tag(mv.name, mv.version, key)
        block = _gate_block(mv.description or "")
        if block is not None:
            self._inner.update_model_version(mv.name, mv.version,
                                             (mv.description or "").replace(block, "").strip())
        if owned or block is not None:
            mv = self._inner.get_model_version(mv.name, mv.version)
        self._gate.on_new_version(mv)
        return mv

    def _promote(self, name, version, target, promote):
        from mlflow_monitor.gate.policy import default_policy
        from mlflow_monitor.gate.recipe_tag import own_recipe_tag_of

        policy = default_policy()
        if (policy is not None and policy.recipe_text is None and policy.protects(target.kind, target.name)
                and own_recipe_tag_of(self._inner, name) is None):
            self._block_by_default_policy(policy, name, str(version), target)
        return self._gate.enforce(name, str(version), target, promote)

    def _block_by_default_policy(self, policy, name, version, target):
        from mlflow_monitor.gate import tags as T
        from mlflow_monitor.gate.authority import audit_event, current_identity
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import BAD_REQUEST

        message = policy.block_message(name, version, target.label)
        audit_event("verdict", current_identity(), model_name=name, version=version,
                    target=target.label, reason=message.splitlines()[0], verdict=T.BLOCKED,
                    allowed=False, default_policy=policy.setting, store_uri=self._inner_uri)
        raise MlflowException(message, error_code=BAD_REQUEST)  # a block, like any other (HTTP 400)

    # -- guarded calls: gate-owned tags --------------------------------------------------
    def create_registered_model(self, name, tags=None, description=None, *args, **kwargs):
        """A recipe given at creation is validated and audited (the creator owns the new
        model); other gate-owned tags are refused."""
        from mlflow_monitor.gate import tags as T

        recipe = None
        for tag in tags or []:
            if tag.key == T.RECIPE:
                recipe = tag.value
            elif _owned(tag.key):
                self._refuse(name, tag.key, "setting")
        plain = [t for t in tags or [] if t.key != T.RECIPE]
        if recipe is not None:
            self._validate_recipe_at_creation(name, recipe)
        model = self._inner.create_registered_model(name, plain if tags else tags, description, *args, **kwargs)
        if recipe is not None:
            from mlflow.entities.model_registry import RegisteredModelTag

            from mlflow_monitor.gate.authority import audit_event, current_identity
            from mlflow_monitor.gate.policy import tag_hash

            self._inner.set_registered_model_tag(name, RegisteredModelTag(T.RECIPE, recipe))
            audit_event("policy_change", current_identity(), model_name=name, target=T.RECIPE,
                        reason="recipe set at model creation", old_hash=None,
                        new_hash=tag_hash(recipe), store_uri=self._inner_uri)
            model = self._inner.get_registered_model(name)
        return model

    def _validate_recipe_at_creation(self, name, recipe):
        from mlflow_monitor.gate.escaping import safe_text
        from mlflow_monitor.gate.errors import invalid_input
        from mlflow_monitor.gate.recipe_tag import load_recipe_tag
        from mlflow_monitor.redaction import redact

        try:
            load_recipe_tag(recipe)
        except Exception as exc:
            raise invalid_input(f"mlflow-monitor refused: invalid recipe for model '{safe_text(name)}'\n"
                                f"{type(exc).__name__}: {safe_text(redact(str(exc)))}\n"
                                "Nothing was created.") from None

    def set_registered_model_tag(self, name, tag):
        from mlflow_monitor.gate import tags as T
        from mlflow_monitor.gate.policy import set_recipe_tag

        if tag.key == T.RECIPE:
            return set_recipe_tag(self._inner, name, tag.value, store_uri=self._inner_uri)
        if _owned(tag.key):
            self._refuse(name, tag.key, "setting")
        return self._inner.set_registered_model_tag(name, tag)

    def delete_registered_model_tag(self, name, key):
        from mlflow_monitor.gate import tags as T
        from mlflow_monitor.gate.policy import remove_recipe_tag

        if key == T.RECIPE:
            return remove_recipe_tag(self._inner, name, store_uri=self._inner_uri)
        if _owned(key):
            self._refuse(name, key, "deleting")
        return self._inner.delete_registered_model_tag(name, key)

    def set_model_version_tag(self, name, version, tag):
        from mlflow_monitor.gate import tags as T
        from mlflow_monitor.gate.override import approve_override, request_override

        if tag.key == T.OVERRIDE:
            return request_override(self._inner, name, str(version), tag.value, store_uri=self._inner_uri)
        if tag.key == T.OVERRIDE_APPROVE:
            approve_override(self._inner, name, str(version), note=tag.value or "",
                             store_uri=self._inner_uri)
            return None
        if _is_prod_run_link(tag.key):  # the monitoring run's link, with proof (gate/prod_run_link.py)
            from mlflow_monitor.gate.prod_run_link import link_monitoring_run

            link_monitoring_run(self._inner, name, str(version), tag.value, tracking_uri=self._gate.tracking_uri(),
                                store_uri=self._inner_uri)
            return None
        if _owned(tag.key):
            self._refuse(name, tag.key, "setting", version=version)
        return self._inner.set_model_version_tag(name, version, tag)

    def delete_model_version_tag(self, name, version, key):
        if _owned(key):
            self._refuse(name, key, "deleting", version=version)
        return self._inner.delete_model_version_tag(name, version, key)

    def set_prompt_tag(self, name, key, value):
        from mlflow_monitor.gate import tags as T
        from mlflow_monitor.gate.policy import set_recipe_tag

        if key == T.RECIPE:
            return set_recipe_tag(self._inner, name, value, store_uri=self._inner_uri)
        if _owned(key):
            self._refuse(name, key, "setting")
        return self._inner.set_prompt_tag(name, key, value)

    def delete_prompt_tag(self, name, key):
        from mlflow_monitor.gate import tags as T
        from mlflow_monitor.gate.policy import remove_recipe_tag

        if key == T.RECIPE:
            return remove_recipe_tag(self._inner, name, store_uri=self._inner_uri)
        if _owned(key):
            self._refuse(name, key, "deleting")
        return self._inner.delete_prompt_tag(name, key)

    def set_prompt_version_tag(self, name, version, key, value):
        if _owned(key):
            self._refuse(name, key, "setting", version=version)
        return self._inner.set_prompt_version_tag(name, version, key, value)

    def delete_prompt_version_tag(self, name, version, key):
        if _owned(key):
            self._refuse(name, key, "deleting", version=version)
        return self._inner.delete_prompt_version_tag(name, version, key)

    def update_model_version(self, name, version, description):
        current = self._inner.get_model_version(name, version).description or ""
        if _gate_block(current) != _gate_block(description or ""):
            self._refuse(name, "description", "changing", version=version,
                         why="the gate's block in the description (between its markers) is written "
                             "only by the gate; edit the text outside it")
        return self._inner.update_model_version(name, version, description)

    # -- guarded calls: moving or deleting what the gate protects -----------------------
    def rename_registered_model(self, name, new_name):
        gated = self._gated_reasons(name)
        if gated:
            self._require_owner(name, "renaming", gated)
        result = self._inner.rename_registered_model(name, new_name)
        if gated:
            self._audit_owner_change(name, "model renamed", new_name=new_name, protected=gated)
        return result

    def delete_registered_model(self, name):
        gated = self._gated_reasons(name)
        if gated:
            self._require_owner(name, "deleting", gated)
        result = self._inner.delete_registered_model(name)
        if gated:
            self._audit_owner_change(name, "model deleted", protected=gated)
        return result

    def delete_model_version(self, name, version):
        from mlflow_monitor.gate.policy import protected_targets_held

        held = protected_targets_held(self._inner, name, str(version))
        if held:
            self._require_owner(name, f"deleting version {version}",
                                [f"it holds protected {', '.join(held)}"], version=version)
        result = self._inner.delete_model_version(name, version)
        if held:
            self._audit_owner_change(name, "version deleted", version=version, protected=held)
        return result

    def _gated_reasons(self, name):
        from mlflow_monitor.gate.policy import protected_targets_held
        from mlflow_monitor.gate.recipe_tag import own_recipe_tag_of

        reasons = []
        if own_recipe_tag_of(self._inner, name) is not None:
            reasons.append("it has a recipe")
        held = protected_targets_held(self._inner, name)
        if held:
            reasons.append(f"it holds protected {', '.join(held)}")
        return reasons

    def _require_owner(self, name, action, reasons, version=None):
        from mlflow_monitor.gate.authority import current_identity, require_policy_owner

        require_policy_owner(current_identity(), name, action, target=action, store_uri=self._inner_uri,
                             because=tuple(reasons), version=version)

    def _audit_owner_change(self, name, reason, **details):
        from mlflow_monitor.gate.authority import audit_event, current_identity

        audit_event("policy_change", current_identity(), model_name=name, target="model",
                    reason=reason, store_uri=self._inner_uri, **details)

    def _refuse(self, name, key, op, *, version=None, why=None):
        from mlflow_monitor.gate.authority import audit_event, current_identity, refusal, who
        from mlflow_monitor.gate.escaping import safe_text

        identity = current_identity()
        where = f"model '{safe_text(name)}'" + ("" if version is None else f" version {safe_text(version)}")
        why = why or _why_owned(key)
        audit_event("refused_write", identity, model_name=name,
                    version=None if version is None else str(version), target=key,
                    reason=f"{op} {key}: {why}", store_uri=self._inner_uri)
        raise refusal(f"{op} '{safe_text(key)}' on {where} is not allowed: the gate owns it",
                      f"{why}. Asked by {who(identity)}. Nothing was changed.")


def _is_prod_run_link(key) -> bool:
    """``key`` is the version's monitoring-run tag (the prefix check first: the constant's
    module, core ``windows.stored``, imports pandas, which this store otherwise never does)."""
    if not (isinstance(key, str) and key.startswith("mlflow_monitor.prod.")):
        return False
    from mlflow_monitor.windows.stored import PROD_RUN_TAG

    return key == PROD_RUN_TAG


def _owned(key) -> bool:
    from mlflow_monitor.gate import tags as T

    return (isinstance(key, str) and key.startswith(T.OWNED_PREFIX)
            and not key.startswith(T.NOT_OWNED_PREFIXES))


def _why_owned(key: str) -> str:
    from mlflow_monitor.gate import tags as T

    if key.startswith(T.PREFIX + "override"):
        return (f"override state is written by the gate: request with tag '{T.OVERRIDE}' = reason, "
                f"approve (a different person, MANAGE) with tag '{T.OVERRIDE_APPROVE}'")
    return ("tags under 'mlflow_monitor.' are written only by the gate (verdicts, reports, audit) "
            f"or by its policy API (the recipe tag '{T.RECIPE}')")


def _gate_block(description: str):
    """The gate's marked block in a description (markers included), or None."""
    from mlflow_monitor.gate import tags as T

    start = description.find(T.DESCRIPTION_BEGIN)
    if start < 0:
        return None
    stop = description.find(T.DESCRIPTION_END, start)
    return description[start:] if stop < 0 else description[start:stop + len(T.DESCRIPTION_END)]


def enable_gating(enable: bool = True) -> str:
    """Gate Model Registry promotions made from this process.

    Wraps the current registry URI in ``monitor:`` (idempotent); ``enable_gating(False)``
    restores the URI that was current before. ``MlflowClient`` objects built before the
    call on the same registry are switched too (and switched back), so none stays silently
    ungated; one that cannot be switched is named in a warning. Returns the registry URI
    now in effect.
    """
    import mlflow

    with _gating_lock:
        current = mlflow.get_registry_uri()
        if enable:
            if not current.startswith(_PREFIX):
                _uri_before_gating["uri"] = current
                mlflow.set_registry_uri(_PREFIX + current)
                _switch_existing_clients(current, _PREFIX + current)
        elif current.startswith(_PREFIX):
            before = _uri_before_gating.pop("uri", None) or inner_uri_of(current)
            mlflow.set_registry_uri(before)
            _switch_existing_clients(current, before, only=_switched_clients)
        return mlflow.get_registry_uri()


def _switch_existing_clients(old_uri: str, new_uri: str, only: Any = None) -> None:
    """Point live ``MlflowClient`` s whose registry is ``old_uri`` at ``new_uri``."""
    from mlflow_monitor.mlflow_compat import client_registry_uri, live_mlflow_clients, set_client_registry_uri
    from mlflow_monitor.redaction import redact

    try:
        clients = list(only) if only is not None else live_mlflow_clients()
    except Exception as exc:  # never fail enable_gating over this scan
        _logger.warning("mlflow-monitor: could not look for MlflowClients built before enable_gating(): %s",
                        redact(str(exc))[:200])
        return
    for client in clients:
        if client_registry_uri(client) != old_uri:
            continue
        if set_client_registry_uri(client, new_uri):
            if only is None:
                _switched_clients.add(client)
            else:
                _switched_clients.discard(client)
        else:
            _logger.warning("mlflow-monitor: MlflowClient at 0x%x was built before enable_gating() and "
                            "cannot be switched: its promotions are NOT gated; build a new MlflowClient",
                            id(client))


def disable_gating() -> str:
    """Same as ``enable_gating(False)``."""
    return enable_gating(False)
