"""The one number formatter for messages, reasons, tags and reports."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["format_number", "format_signed"]


def format_number(x: Any, *, thousands: bool = False) -> str:
    """A value as people read it: ``None`` -> ``n/a``, numbers to 4 significant digits.

    With ``thousands=True``, finite values from 1e4 to 1e12 are written whole with
    separators (``12,345``), as in Slack messages. Anything that is not a number is
    returned as ``str(x)``: the caller escapes it for where it is shown.
    """
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x)
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if thousands and math.isfinite(v) and 1e4 <= abs(v) < 1e12:
        return f"{v:,.0f}"
    return f"{v:.4g}"


def format_signed(x: Any) -> str:
    """A difference with its sign (``+0.012``); non-numbers as :func:`format_number`."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return f"{x:+.4g}"
    return format_number(x)
