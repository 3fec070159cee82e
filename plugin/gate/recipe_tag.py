"""Reading a registered model's recipe from its tag ``mlflow_monitor.recipe``, or the
operator's default policy (:mod:`.policy`) for a model without one."""

from __future__ import annotations

from typing import Any, Optional

from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.escaping import safe_text
from mlflow_monitor.recipes import BUILTIN_RECIPES, Recipe, RecipeError, load_recipe

__all__ = ["load_recipe_tag", "own_recipe_tag_of", "recipe_tag_of"]


def own_recipe_tag_of(store: Any, name: str) -> Optional[str]:
    """The recipe tag of registered model (or prompt) ``name`` in registry ``store``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        model = store.get_registered_model(name)
    except MlflowException as exc:
        prompt = _prompt_or_none(store, name)
        if prompt is None:
            raise exc
        return (prompt.tags or {}).get(T.RECIPE)
    return (model.tags or {}).get(T.RECIPE)


def _prompt_or_none(store: Any, name: str) -> Any:
    """The prompt ``name`` (MLflow keeps prompts apart from registered models), or None."""
    get_prompt = getattr(store, "get_prompt", None)
    if get_prompt is None:
        return None
    try:
        return get_prompt(name)
    except Exception:
        return None


def is_prompt(store: Any, name: str) -> bool:
    """Whether ``name`` is a prompt rather than a registered model."""
    from mlflow.exceptions import MlflowException

    try:
        store.get_registered_model(name)
        return False
    except MlflowException:
        return _prompt_or_none(store, name) is not None


def recipe_tag_of(store: Any, name: str) -> Optional[str]:
    """The recipe the gate applies to ``name``: its own tag, else the operator's default
    policy recipe (gating only the protected targets); None: not gated. (A ``block``
    default policy is enforced by the store before the gate runs.)"""
    own = own_recipe_tag_of(store, name)
    if own is not None:
        return own
    from mlflow_monitor.gate.policy import default_policy

    policy = default_policy()
    return policy.recipe_text if policy is not None else None


def load_recipe_tag(source: Any) -> Recipe:
    """A recipe from a tag value (built-in name or YAML text; never a file path, so a tag
    cannot make the server read its files), or an already loaded Recipe.

    Raises :class:`~mlflow_monitor.recipes.RecipeError`.
    """
    import yaml

    if isinstance(source, str):
        text = source.strip()
        if text in BUILTIN_RECIPES or "\n" in text:
            return load_recipe(text)
        try:  # one line: only flow-style YAML, e.g. {task: drift, current: ...}
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            data = None
        if not isinstance(data, dict):
            raise RecipeError(f"tag {T.RECIPE}", [
                f"expected a built-in name ({', '.join(BUILTIN_RECIPES)}) or recipe YAML text, "
                f"got a single line that is neither: '{safe_text(text[:80])}'"])
        return load_recipe(data)
    return load_recipe(source)
