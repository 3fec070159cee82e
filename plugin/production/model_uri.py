"""``models:/<name>/<version>`` and ``models:/<name>@<alias>`` as (name, version)."""

from __future__ import annotations

from typing import Any

__all__ = ["resolve_model_version"]


def resolve_model_version(model_uri: str, client: Any) -> tuple[str, str]:
    """The registered model and version ``model_uri`` names, an alias resolved now.

    Raises ``ValueError`` for a URI that names no registered version (production
    monitoring logs against a version), and what the registry raises for a missing one.
    """
    allowed = "models:/<name>/<version> or models:/<name>@<alias>"
    if not isinstance(model_uri, str) or not model_uri.startswith("models:/"):
        raise ValueError(f"model URI must be {allowed} (a registered model version); got {model_uri!r}")
    rest = model_uri[len("models:/"):].strip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        if not name or not alias:
            raise ValueError(f"model URI must be {allowed}; got {model_uri!r}")
        mv = client.get_model_version_by_alias(name, alias)
        return name, str(mv.version)
    name, _, version = rest.rpartition("/")
    if not name or not version.isdigit():
        raise ValueError(f"model URI must be {allowed} (stages and 'latest' are not resolved); got {model_uri!r}")
    mv = client.get_model_version(name, version)
    return name, str(mv.version)
