"""How the ``monitor:`` store treats every public method of MLflow's registry ``AbstractStore``.

Each method is one of

- :data:`FORWARDED`: passed to the inner store unchanged (reads, and writes that cannot
  move a version into a gated alias or stage, nor change the gate's state);
- :data:`GATED`: the promotion gate evaluates the call before the inner store sees it;
- :data:`GUARDED`: the call is checked (gate-owned keys, gated names, protected aliases)
  and refused when the caller may not make it.

``tests/gate/test_registry_contract.py`` fails when the installed MLflow's
``AbstractStore`` has a public method that is not listed here, so a newer MLflow cannot
add a promotion path that silently bypasses the gate: classify the new method, then
implement it on :class:`~mlflow_monitor.gate.registry_store.MonitorRegistryStore` when it
is not forwarded.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

__all__ = ["FORWARDED", "GATED", "GUARDED", "METHODS", "classification_of"]

FORWARDED = "forwarded"
GATED = "gated"
GUARDED = "guarded"

_GATED = (
    "set_registered_model_alias",  # target alias:<alias>
    "transition_model_version_stage",  # target stage:<stage>
    "create_model_version",  # target new_version (advisory) + override keys at creation
    "copy_model_version",  # a new version in the destination model
    "set_prompt_alias",  # AbstractStore implements it with set_registered_model_alias
)

_GUARDED = (
    "set_registered_model_tag",  # the recipe and other gate-owned keys
    "delete_registered_model_tag",
    "set_model_version_tag",  # verdict and override keys
    "delete_model_version_tag",
    "rename_registered_model",  # renaming a gated model, or a model into a gated name
    "delete_registered_model",
    "delete_model_version",  # a version holding a protected alias
    "update_model_version",  # the description mirrors the verdict
    "create_registered_model",  # gate-owned keys in its tags
    "set_prompt_tag",  # prompts are registered models: the same gate-owned keys
    "delete_prompt_tag",
    "set_prompt_version_tag",
    "delete_prompt_version_tag",
)

_FORWARDED = (
    # registered models and versions: reads and ungated writes
    "get_registered_model",
    "search_registered_models",
    "get_latest_versions",
    "get_model_version",
    "get_model_version_by_alias",
    "get_model_version_download_uri",
    "search_model_versions",
    "update_registered_model",  # the model's description: no gate state lives there
    "delete_registered_model_alias",  # removing an alias promotes nothing
    # prompts (registered models tagged as prompts; aliases are gated above)
    "create_prompt",
    "create_prompt_version",
    "delete_prompt",
    "delete_prompt_alias",
    "delete_prompt_version",
    "get_prompt",
    "get_prompt_version",
    "get_prompt_version_by_alias",
    "link_prompt_version_to_model",
    "link_prompt_version_to_run",
    "link_prompts_to_trace",
    "search_prompt_versions",
    "search_prompts",
    # webhooks
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_webhooks",
    "list_webhooks_by_event",
    "test_webhook",
    "update_webhook",
    # store capabilities
    "supports_workspaces",
)

#: ``{method name: FORWARDED | GATED | GUARDED}`` for every classified method.
METHODS: Mapping[str, str] = MappingProxyType({
    **{m: FORWARDED for m in _FORWARDED},
    **{m: GATED for m in _GATED},
    **{m: GUARDED for m in _GUARDED},
})


def classification_of(method: str) -> str:
    """The class of ``method``; raises ``KeyError`` naming it when it is not classified."""
    try:
        return METHODS[method]
    except KeyError:
        raise KeyError(f"registry store method {method!r} is not classified in "
                       f"mlflow_monitor.gate.store_methods (expected one of "
                       f"{FORWARDED}, {GATED}, {GUARDED})") from None
