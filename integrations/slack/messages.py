"""What the notifier sends: a rendered :class:`SlackMessage`, and the :class:`ThreadRef` it threads under.

Both round-trip through plain dicts (``to_dict`` / ``from_dict``): the dead-letter file
stores them and ``mlflow-monitor slack replay`` reads them back.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Mapping, Optional


@dataclasses.dataclass(frozen=True)
class ThreadRef:
    """What a message threads under: a model version's promotions, or one training run."""

    kind: str  # "model_version" | "run"
    key: tuple[str, ...]  # (name, version) | (run_id,)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": list(self.key)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ThreadRef":
        return cls(str(data["kind"]), tuple(str(k) for k in data["key"]))


@dataclasses.dataclass(frozen=True)
class SlackMessage:
    """A rendered message: what is sent, where it threads, and how it dedups."""

    kind: str  # "verdict" | "run_summary" | "health_alert" | "suppressed"
    text: str  # plain-text fallback (notifications, clients without blocks)
    blocks: list[dict[str, Any]]
    dedup_key: str
    thread: Optional[ThreadRef] = None
    channel: Optional[str] = None  # overrides the configured channel (bot token only)
    created: float = dataclasses.field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["thread"] = self.thread.to_dict() if self.thread else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SlackMessage":
        thread = data.get("thread")
        return cls(kind=str(data["kind"]), text=str(data["text"]), blocks=list(data.get("blocks") or []),
                   dedup_key=str(data.get("dedup_key", "")),
                   thread=ThreadRef.from_dict(thread) if thread else None,
                   channel=data.get("channel"), created=float(data.get("created") or time.time()))
