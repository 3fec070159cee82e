"""Making user strings and values safe for where the gate writes them.

- :func:`safe_text`: one line, markup neutralised (exception texts, tags, CLI output),
  and :func:`safe_number` for numbers in such text;
- :func:`markdown_text`: inside MLflow's markdown version description;
- :func:`json_safe`: plain JSON data (NaN/inf become ``None``).

Credentials are removed by :func:`mlflow_monitor.redaction.redact`, before escaping.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

from mlflow_monitor.formatting import format_number

__all__ = ["is_finite", "json_safe", "markdown_text", "safe_number", "safe_text"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY_START = re.compile(r"&(?=[#A-Za-z])")


def safe_text(text: Any) -> str:
    """A user string (model/column name, error) made safe to show, on one line.

    Neutralises markup: ``<`` that could open a tag and ``&`` that could open an entity
    are escaped (``<script>`` -> ``&lt;script>``); rule operators like ``drift_share < 0.3``
    stay readable.
    """
    one_line = _CONTROL.sub(" ", str(text)).replace("\n", " ")
    return _TAG_START.sub("&lt;", _ENTITY_START.sub("&amp;", one_line))


def safe_number(x: Any) -> str:
    """A value in a message: ``n/a``, 4 significant digits, or the escaped text of a non-number."""
    return safe_text(format_number(x))


def markdown_text(text: Any) -> str:
    """Safe inside MLflow's markdown description: HTML-escaped and markdown-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(_CONTROL.sub(" ", str(text)), quote=True))


def is_finite(v: Any) -> bool:
    """Whether ``v`` is a finite number (anything else: False)."""
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def json_safe(obj: Any) -> Any:
    """Plain JSON data; NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, (int, float)):
        return obj if is_finite(obj) else None
    try:
        f = float(obj)
        return f if math.isfinite(f) else None
    except (TypeError, ValueError):
        return str(obj)
