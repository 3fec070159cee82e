"""Window granularity: "1s" .. "1d", parsed once (with every other duration of the
monitor: look-back windows, label horizons), and the window a timestamp falls in."""

from __future__ import annotations

import math
import re

__all__ = ["MAX_GRANULARITY_S", "MIN_GRANULARITY_S", "format_granularity", "parse_duration", "parse_granularity",
           "window_start"]

MIN_GRANULARITY_S = 1
MAX_GRANULARITY_S = 86_400
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(value: "str | int", *, what: str = "duration", max_s: int = 366 * 86_400) -> int:
    """Seconds of ``"<n>s|m|h|d"`` (any case, spaces allowed) or whole seconds, from 1 s to
    ``max_s``: the one parser of window granularities, look-back windows and horizons.

    Raises ``ValueError`` naming ``what``, the value and what is allowed.
    """
    allowed = f"a whole number followed by s, m, h or d (e.g. '30s', '5m', '1h', '7d'), from 1s to " \
              f"{format_granularity(max_s)}"
    seconds = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        match = _PATTERN.match(value.lower())
        if match is not None:
            seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None:
        raise ValueError(f"{what} must be {allowed}; got {type(value).__name__} {value!r}")
    if not MIN_GRANULARITY_S <= seconds <= max_s:
        raise ValueError(f"{what} must be {allowed}; got {value!r} ({seconds} s)")
    return seconds


def parse_granularity(value: "str | int") -> int:
    """Seconds of a window granularity, from 1 s to 1 day (:func:`parse_duration`)."""
    return parse_duration(value, what="window granularity", max_s=MAX_GRANULARITY_S)


def format_granularity(seconds: int) -> str:
    """The shortest ``"<n><unit>"`` spelling of ``seconds`` ("300" -> "5m")."""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def window_start(timestamp_s: float, granularity_s: int) -> int:
    """Start (epoch seconds) of the window holding ``timestamp_s``.

    Windows are aligned to the epoch, so every worker and replica cuts the same windows
    without talking to the others.
    """
    if not math.isfinite(timestamp_s):
        raise ValueError(f"timestamp must be a finite number of seconds, got {timestamp_s!r}")
    return int(math.floor(timestamp_s / granularity_s)) * granularity_s
