"""Block Kit building blocks that always stay within Slack's limits.

Slack rejects a message (``invalid_blocks``) with more than 50 blocks, a section
text over 3000 characters or a header over 150. Every helper here truncates and
says what it left out ("+N more") instead.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_FIELDS = 10
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000  # the notification text; Slack's own cap is 40000

Block = dict[str, Any]


def escape(text: object) -> str:
    """Escape a user string for mrkdwn: ``&``, ``<`` and ``>`` (Slack's control characters)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def link(url: Optional[str], label: str) -> str:
    """A mrkdwn link ``<url|label>`` (label escaped); just the label when there is no URL."""
    if not url:
        return escape(label)
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe_url}|{escape(label)}>"


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def header(text: str) -> Block:
    """A header block (plain text, so no escaping; at most 150 characters)."""
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text or " ", MAX_HEADER_TEXT),
                                       "emoji": True}}


def section(mrkdwn: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(mrkdwn or " ", MAX_SECTION_TEXT)}}


def fields(pairs: Iterable[tuple[str, str]]) -> Block:
    """A section of up to 10 ``*label*\\nvalue`` fields (values must already be mrkdwn-safe)."""
    items = [{"type": "mrkdwn", "text": truncate(f"*{escape(k)}*\n{v}", MAX_FIELD_TEXT)}
             for k, v in list(pairs)[:MAX_FIELDS]]
    return {"type": "section", "fields": items}


def context(*mrkdwn: str) -> Block:
    elements = [{"type": "mrkdwn", "text": truncate(t, MAX_SECTION_TEXT)} for t in mrkdwn if t]
    return {"type": "context", "elements": elements[:MAX_CONTEXT_ELEMENTS] or [{"type": "mrkdwn", "text": " "}]}


def divider() -> Block:
    return {"type": "divider"}


def bullet_section(title: str, lines: list[str], total: Optional[int] = None, noun: str = "more") -> Block:
    """A section ``*title*`` + bullet lines, cut to fit 3000 characters with a "+N more" line.

    ``lines`` are mrkdwn-safe already; ``total`` is the full count when ``lines`` was
    pre-trimmed by the caller (e.g. top 10 of 200 columns).
    """
    total = len(lines) if total is None else total
    head = f"*{truncate(escape(title), 200)}*"
    kept: list[str] = []
    size = len(head)
    reserve = 40  # room for the "+N more" line
    for line in lines:
        line = "\u2022 " + truncate(line, 500)
        if size + 1 + len(line) > MAX_SECTION_TEXT - reserve:
            break
        kept.append(line)
        size += 1 + len(line)
    more = total - len(kept)
    body = "\n".join([head, *kept] + ([f"_+{more} {noun}_"] if more > 0 else []))
    return section(body)


def fit_blocks(blocks: list[Block]) -> list[Block]:
    """At most 50 blocks: keep the first 49 and add a context block saying how many were cut."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    cut = len(blocks) - (MAX_BLOCKS - 1)
    return blocks[: MAX_BLOCKS - 1] + [context(f"_+{cut} more blocks not shown_")]


def fallback_text(text: str) -> str:
    """The plain notification text: escaped (Slack parses it) and cut short."""
    return truncate(escape(text), MAX_FALLBACK_TEXT)
