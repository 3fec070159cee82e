"""Load recipes from a built-in name, a YAML file, YAML text or a mapping."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import pydantic
import yaml

from mlflow_monitor.recipes.rules import parse_rule
from mlflow_monitor.recipes.schema import Recipe

#: Registered-model tag holding the recipe: a built-in name or the YAML text itself.
RECIPE_TAG = "mlflow_monitor.recipe"

#: Names of the recipes shipped in ``recipes/builtin/*.yaml``.
BUILTIN_RECIPES = ("classification", "regression", "drift")

#: Largest recipe accepted, in bytes of UTF-8 text (a recipe is a page of YAML).
MAX_RECIPE_BYTES = 64 * 1024
#: Most values (mappings, lists and scalars, counted recursively) a recipe may hold.
MAX_RECIPE_NODES = 10_000


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
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_RECIPE_BYTES:
        raise RecipeError(origin, [
            f"(root): recipe is {size} bytes; expected at most {MAX_RECIPE_BYTES} bytes (64 KiB)"])
    try:
        data = yaml.load(text, Loader=_PlainYamlLoader)  # noqa: S506 (a SafeLoader, see below)
    except _ForbiddenYaml as exc:
        raise RecipeError(origin, [str(exc)]) from None
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
    problem = _shape_problem(data)
    if problem:
        raise RecipeError(origin, [problem])
    try:
        return Recipe.model_validate(data)
    except pydantic.ValidationError as exc:
        errors = _format_errors(exc)
        errors += [e for e in _rule_problems(data) if e not in errors]
        raise RecipeError(origin, errors) from None


class _ForbiddenYaml(yaml.YAMLError):
    """A YAML feature recipes do not allow (anchors, aliases, merge keys)."""


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


class _PlainYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors, aliases and merge keys.

    A recipe is read inside the registry server from a tag any EDIT user may write; an
    alias bomb (a few lines of nested ``*a`` references) expands to billions of values
    when the recipe is validated or hashed. Refusing the first anchor or alias while the
    document is composed keeps the cost linear in the text.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _ForbiddenYaml(f"{_where(event.start_mark)}YAML aliases are not allowed in recipes "
                                 f"(alias of {event.anchor!r}); write the value out")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _ForbiddenYaml(f"{_where(event.start_mark)}YAML anchors are not allowed in recipes "
                                 f"(anchor {anchor!r}); write the value out")
        return super().compose_node(parent, index)

    def flatten_mapping(self, node: Any) -> None:
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _ForbiddenYaml(f"{_where(key_node.start_mark)}YAML merge keys are not "
                                     "allowed in recipes (key '<<'); write the keys out")
        super().flatten_mapping(node)


def _shape_problem(data: Any) -> Optional[str]:
    """Why ``data`` is not a plain tree of at most :data:`MAX_RECIPE_NODES` values, or None.

    A mapping built in Python (or by another YAML reader) can share one list or mapping
    in many places, which is the same blow-up as a YAML alias: refused, and the walk stops
    at the first shared container, so it never expands one.
    """
    seen: set[int] = set()
    stack, count = [data], 0
    while stack:
        item = stack.pop()
        count += 1
        if count > MAX_RECIPE_NODES:
            return f"(root): recipe holds more than {MAX_RECIPE_NODES} values; expected a smaller recipe"
        if isinstance(item, (dict, list, tuple)):
            if id(item) in seen:
                return ("(root): recipe repeats one list or mapping in several places (a YAML "
                        "alias or a shared Python object); expected each value written out")
            seen.add(id(item))
            stack.extend(item.values() if isinstance(item, dict) else item)
            if isinstance(item, dict):
                stack.extend(item.keys())
    return None


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
    if kind in ("less_than", "less_than_equal"):
        ctx = err.get("ctx", {})
        bound = f"< {ctx['lt']}" if "lt" in ctx else f"<= {ctx.get('le')}"
        return f"expected a number {bound}, got {got!r}"
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {got!r}"
    return f"{err['msg']}, got {got!r}"
