"""The gate's policy: a model's recipe (owner-only changes, audited) and the operator's
server-wide default for models without one.

Policy API
    :func:`set_recipe_tag` / :func:`remove_recipe_tag` are the only way the recipe tag
    changes through ``monitor:`` (the store routes tag writes of ``mlflow_monitor.recipe``
    here; ``mlflow-monitor recipe set/remove`` goes through the store). Only a policy owner
    (MANAGE or admin on the server, the OS user in a client) passes; the recipe is validated
    first, and each change is audited as ``policy_change`` with the sha256 of the old and
    the new tag value.

Default policy (operator, environment of the process running the gate)
    ``MLFLOW_MONITOR_DEFAULT_POLICY``: ``block``, a built-in recipe name or a YAML file.
    A model without a recipe may then not take a protected alias or stage
    (``MLFLOW_MONITOR_PROTECTED_ALIASES``, default ``champion``;
    ``MLFLOW_MONITOR_PROTECTED_STAGES``, default ``Production``; comma-separated) unless
    the default recipe passes, with ``on_error: block``. ``block`` refuses them outright.
    An unreadable setting blocks too (fail closed).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Optional

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.authority import Identity, audit_event, current_identity, require_policy_owner
from mlflow_monitor.gate.errors import invalid_input
from mlflow_monitor.gate.escaping import safe_text

__all__ = ["ENV_DEFAULT_POLICY", "ENV_PROTECTED_ALIASES", "ENV_PROTECTED_STAGES", "DefaultPolicy",
           "default_policy", "protected_targets_held", "remove_recipe_tag", "set_recipe_tag",
           "tag_hash"]

ENV_DEFAULT_POLICY = "MLFLOW_MONITOR_DEFAULT_POLICY"
ENV_PROTECTED_ALIASES = "MLFLOW_MONITOR_PROTECTED_ALIASES"
ENV_PROTECTED_STAGES = "MLFLOW_MONITOR_PROTECTED_STAGES"
BLOCK = "block"


def tag_hash(value: Optional[str]) -> Optional[str]:
    """sha256 of a tag value (None when there is none): what ``policy_change`` records."""
    return None if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()


# -- recipe changes ------------------------------------------------------------------------
def set_recipe_tag(inner: Any, name: str, value: str, *, identity: Optional[Identity] = None,
                   store_uri: Optional[str] = None) -> None:
    """Attach or replace ``name``'s recipe (tag value: built-in name or YAML text)."""
    from mlflow.entities.model_registry import RegisteredModelTag

    from mlflow_monitor.gate.recipe_tag import is_prompt, load_recipe_tag, own_recipe_tag_of

    identity = identity or current_identity()
    require_policy_owner(identity, name, "a recipe change", target=T.RECIPE, store_uri=store_uri)
    try:
        load_recipe_tag(value)
    except Exception as exc:
        from mlflow_monitor.redaction import redact

        reason = f"invalid recipe: {type(exc).__name__}: {safe_text(redact(str(exc)))}"
        audit_event("refused_write", identity, model_name=name, target=T.RECIPE, reason=reason,
                    store_uri=store_uri)
        raise invalid_input(f"mlflow-monitor refused: invalid recipe for model '{safe_text(name)}'\n"
                            f"{reason}\nNothing was changed.") from None
    old = own_recipe_tag_of(inner, name)
    if is_prompt(inner, name):
        inner.set_prompt_tag(name, T.RECIPE, value)
    else:
        inner.set_registered_model_tag(name, RegisteredModelTag(T.RECIPE, value))
    audit_event("policy_change", identity, model_name=name, target=T.RECIPE,
                reason="recipe set" if old is None else "recipe replaced",
                old_hash=tag_hash(old), new_hash=tag_hash(value), store_uri=store_uri)


def remove_recipe_tag(inner: Any, name: str, *, identity: Optional[Identity] = None,
                      store_uri: Optional[str] = None) -> None:
    """Detach ``name``'s recipe (its promotions are then ungated, or under the default policy)."""
    from mlflow_monitor.gate.recipe_tag import is_prompt, own_recipe_tag_of

    identity = identity or current_identity()
    require_policy_owner(identity, name, "removing the recipe", target=T.RECIPE, store_uri=store_uri)
    old = own_recipe_tag_of(inner, name)
    if is_prompt(inner, name):
        inner.delete_prompt_tag(name, T.RECIPE)
    else:
        inner.delete_registered_model_tag(name, T.RECIPE)
    audit_event("policy_change", identity, model_name=name, target=T.RECIPE, reason="recipe removed",
                old_hash=tag_hash(old), new_hash=None, store_uri=store_uri)


# -- the operator's default policy ---------------------------------------------------------
class DefaultPolicy:
    """The server-wide default for models without a recipe (from the environment)."""

    def __init__(self, setting: str, aliases: list[str], stages: list[str]) -> None:
        self.setting = setting
        self.aliases = aliases
        self.stages = stages
        self.recipe_text: Optional[str] = None  # the recipe to evaluate; None: block outright
        self.error: Optional[str] = None  # why the setting could not be read (blocks)
        if setting.lower() != BLOCK:
            try:
                self.recipe_text = _default_recipe_text(setting, aliases, stages)
            except Exception as exc:
                from mlflow_monitor.redaction import redact

                self.error = f"{type(exc).__name__}: {safe_text(redact(str(exc)))[:500]}"

    def protects(self, kind: str, name: str) -> bool:
        if kind == "alias":
            return name in self.aliases
        if kind == "stage":
            return name.lower() in {s.lower() for s in self.stages}
        return False

    def block_message(self, model: str, version: str, target_label: str) -> str:
        why = (f"the operator's default policy ({ENV_DEFAULT_POLICY}={self.setting}) could not be "
               f"read ({self.error}), so it blocks" if self.error else
               f"the operator's default policy ({ENV_DEFAULT_POLICY}=block) protects it")
        return (f"mlflow-monitor gate BLOCKED: model '{safe_text(model)}' has no recipe; "
                f"{safe_text(target_label)} is protected\n"
                f"  version {safe_text(version)} -> {safe_text(target_label)}: {why}.\n"
                f"  A policy owner attaches a recipe: mlflow-monitor recipe set '{safe_text(model)}' FILE")


def _split(value: Optional[str], default: str) -> list[str]:
    raw = default if value is None else value
    return [p.strip() for p in raw.split(",") if p.strip()]


def default_policy() -> Optional[DefaultPolicy]:
    """The operator's default policy, or None when ``MLFLOW_MONITOR_DEFAULT_POLICY`` is unset."""
    setting = (os.environ.get(ENV_DEFAULT_POLICY) or "").strip()
    if not setting:
        return None
    return _cached_policy(setting, os.environ.get(ENV_PROTECTED_ALIASES),
                          os.environ.get(ENV_PROTECTED_STAGES), _mtime(setting))


def _mtime(setting: str) -> float:
    try:
        return Path(setting).stat().st_mtime
    except OSError:
        return 0.0


_cache: dict[tuple[Any, ...], DefaultPolicy] = {}


def _cached_policy(setting: str, aliases: Optional[str], stages: Optional[str], mtime: float) -> DefaultPolicy:
    key = (setting, aliases, stages, mtime)
    if key not in _cache:
        _cache.clear()
        _cache[key] = DefaultPolicy(setting, _split(aliases, "champion"), _split(stages, "Production"))
    return _cache[key]


def _default_recipe_text(setting: str, aliases: list[str], stages: list[str]) -> str:
    """The default recipe, canonical YAML, gating exactly the protected targets, fail closed."""
    from mlflow_monitor.recipes import BUILTIN_RECIPES, load_recipe

    source: Any = setting if setting in BUILTIN_RECIPES else Path(setting)
    if not isinstance(source, str) and not source.is_file():
        raise ValueError(f"expected 'block', a built-in recipe ({', '.join(BUILTIN_RECIPES)}) or a "
                         f"recipe YAML file, got '{setting}'")
    data = load_recipe(source).to_dict()
    data["triggers"] = {"aliases": aliases, "stages": stages, "new_versions": False}
    data["on_error"] = "block"
    return load_recipe(data).to_yaml()


def protected_targets_held(inner: Any, name: str, version: Optional[str] = None) -> list[str]:
    """Gated targets that model ``name`` (or just ``version``) holds now: aliases and stages
    its recipe's triggers cover, or the default policy's when it has no recipe. An
    unreadable recipe protects every alias and stage held (fail closed)."""
    from mlflow_monitor.gate.recipe_tag import load_recipe_tag, own_recipe_tag_of

    model = inner.get_registered_model(name)
    held: list[tuple[str, str]] = []
    for alias_name, alias_version in dict(getattr(model, "aliases", None) or {}).items():
        if version is None or str(alias_version) == str(version):
            held.append(("alias", str(alias_name)))
    versions = [inner.get_model_version(name, version)] if version is not None else \
        list(getattr(model, "latest_versions", None) or [])
    for mv in versions:
        stage = getattr(mv, "current_stage", None)
        if stage and stage not in ("None", "Archived"):
            held.append(("stage", str(stage)))
    text = own_recipe_tag_of(inner, name)
    if text is not None:
        try:
            recipe = load_recipe_tag(text)
        except Exception:
            return [f"{k}:{n}" for k, n in held]
        from mlflow_monitor.gate.decision import Target

        return [f"{k}:{n}" for k, n in held if Target(k, n).triggered_by(recipe)]
    policy = default_policy()
    if policy is None:
        return []
    return [f"{k}:{n}" for k, n in held if policy.protects(k, n)]
