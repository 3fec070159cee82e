"""``WindowKey``: which window of which model version a piece of state belongs to."""

from __future__ import annotations

import dataclasses
import datetime as _dt

from mlflow_monitor.windows.granularity import format_granularity, parse_granularity

__all__ = ["WindowKey"]


@dataclasses.dataclass(frozen=True, order=True)
class WindowKey:
    """(model name, version, window start in epoch seconds, granularity in seconds)."""

    model_name: str
    version: str
    start: int
    granularity_s: int

    @property
    def end(self) -> int:
        """Window end, epoch seconds (exclusive)."""
        return self.start + self.granularity_s

    @property
    def index(self) -> int:
        """The window's number since the epoch: the metric step of its values."""
        return self.start // self.granularity_s

    @property
    def window_id(self) -> str:
        """``20261201T102000Z-5m``: unique within one model version, sortable by time."""
        stamp = _dt.datetime.fromtimestamp(self.start, tz=_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{format_granularity(self.granularity_s)}"

    @property
    def day(self) -> str:
        """``2026-12-01``: the UTC day the window starts on (artifact folders are per day)."""
        return _dt.datetime.fromtimestamp(self.start, tz=_dt.timezone.utc).strftime("%Y-%m-%d")

    def to_dict(self) -> dict:
        return {"model_name": self.model_name, "version": self.version, "start": self.start,
                "granularity_s": self.granularity_s}

    @classmethod
    def from_dict(cls, data: dict) -> "WindowKey":
        return cls(str(data["model_name"]), str(data["version"]), int(data["start"]),
                   parse_granularity(int(data["granularity_s"])))
