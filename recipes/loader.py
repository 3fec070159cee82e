"""Load recipes from a built-in name, a YAML file, YAML text or a mapping."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Union

import pydantic
import yaml

from mlflow_monitor.recipes.rules import parse_rule
from mlflow_monitor.recipes.schema import Recipe

#: Registered-model tag holding the recipe: a built-in name or the YAML text itself.
RECIPE_TAG = "mlflow_monitor.recipe"

#: Names of the recipes shipped in ``recipes/builtin/*.yaml``.
BUILTIN_RECIPES = ("classification", "regression", "drift")


class RecipeError(ValueError):
    """A recipe could not be read or is invalid; ``errors`` holds one line per problem,
    each starting with the YAML path (``rules[1].threshold: expected a number, got 'high'``)."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"invalid recipe ({source}):\n{lines}")


def load_recipe(source: Union[str, Path, Mapping[str, Any], Recipe]) -> Recipe:
    """Load and validate a recipe.

    ``source`` is a built-in name (``classification``, ``regression``, ``drift``), a
    :class:`~pathlib.Path` or path string of a YAML file, YAML text, a mapping, or a
    :class:`Recipe` (returned as is). Raises :class:`RecipeError`.
    """
    if isinstance(source, Recipe):
        return source
    if isinstance(source, Mapping):
        return _validate(dict(source), "mapping")
    if isinstance(source, Path):
        return _from_file(source)
    if not isinstance(source, str):
        raise RecipeError(repr(type(source).__name__), [
            f"expected a built-in name, a YAML path, YAML text or a mapping, "
            f"got {type(source).__name__}"
        ])
    text = source.strip()
    if text in BUILTIN_RECIPES:
        return _builtin(text)
    if "\n" not in text and (text.endswith((".yaml", ".yml")) or Path(text).is_file()):
        return _from_file(Path(text))
    return _from_text(source, "YAML text")


def builtin_recipe_text(name: str) -> str:
    """The YAML text of a built-in recipe."""
    if name not in BUILTIN_RECIPES:
        raise RecipeError(repr(name), [
            f"unknown built-in recipe {name!r}; expected one of {', '.join(BUILTIN_RECIPES)}"
        ])
    return resources.files("mlflow_monitor.recipes").joinpath("builtin", f"{name}.yaml").read_text(
        encoding="utf-8"
    )


def _builtin(name: str) -> Recipe:
    return _from_text(builtin_recipe_text(name), f"built-in {name!r}")


def _from_file(path: Path) -> Recipe:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RecipeError(str(path), [f"cannot read recipe file '{path}': {reason}"]) from None
    return _from_text(text, str(path))


def _from_text(text: str, origin: str) -> Recipe:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(origin, [f"{where}YAML syntax error: {problem}"]) from None
    if not isinstance(data, dict):
        hint = f" (built-in names: {', '.join(BUILTIN_RECIPES)})" if isinstance(data, str) else ""
        raise RecipeError(origin, [
            f"(root): expected a mapping of recipe fields, got {type(data).__name__} {data!r}{hint}"
        ])
    return _validate(data, origin)


def _validate(data: dict[str, Any], origin: str) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = _format_errors(exc)
        errors += [e for e in _rule_problems(data) if e not in errors]
        raise RecipeError(origin, errors) from None


def _rule_problems(data: dict[str, Any]) -> list[str]:
    """Semantic rule problems, reported even when another field is invalid."""
    task, rules = data.get("task"), data.get("rules")
    columns = data.get("columns") if isinstance(data.get("columns"), dict) else {}
    if task not in BUILTIN_RECIPES or not isinstance(rules, list):
        return []
    out = []
    for i, raw in enumerate(rules):
        try:
            spec = parse_rule(raw)
        except (pydantic.ValidationError, ValueError):
            continue  # already reported as a structural error
        out += [f"rules[{i}].{sub}: {msg}" for sub, msg in spec.problems(task, columns.get("target"))]
    return out


def _format_errors(exc: pydantic.ValidationError) -> list[str]:
    out: list[str] = []
    for err in exc.errors():
        path = _yaml_path(err["loc"])
        if err["type"] == "value_error":
            msg = str(err.get("ctx", {}).get("error", err["msg"]))
            if not path:  # model-level checks already carry their own paths
                out.extend(msg.splitlines())
                continue
            out.append(f"{path}: {msg}")
            continue
        out.append(f"{path or '(root)'}: {_describe(err)}")
    return out


def _yaml_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).startswith("function-") or part in {"str", "list[str]"}:
            continue  # pydantic's internal union/validator labels
        else:
            path += f".{part}" if path else str(part)
    return path


_EXPECTED = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "too_short": "expected a non-empty list",
}


def _describe(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return f"unknown field (value {got!r})"
    if kind == "literal_error":
        return f"expected {err.get('ctx', {}).get('expected')}, got {got!r}"
    if kind in ("greater_than", "greater_than_equal"):
        ctx = err.get("ctx", {})
        bound = f"> {ctx['gt']}" if "gt" in ctx else f">= {ctx.get('ge')}"
        return f"expected a number {bound}, got {got!r}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {got!r}"
    return f"{err['msg']}, got {got!r}"
