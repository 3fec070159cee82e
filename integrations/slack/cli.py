"""``mlflow-monitor slack ...``: resend dead-lettered Slack messages."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Optional

import click

from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.dead_letter import (
    append_entries,
    claim,
    default_path,
    file_lock,
    read_entries,
    rewrite_entries,
)
from mlflow_monitor.integrations.slack.notifier import SlackNotifier
from mlflow_monitor.integrations.slack.transport import DeliveryError
from mlflow_monitor.redaction import redact


@dataclasses.dataclass
class ReplayResult:
    delivered: int = 0
    kept: int = 0
    busy: bool = False  # another replay holds the replay lock: nothing was done


def replay_lock_path(path: Path) -> Path:
    """Held by a replay for its whole run (``slack.jsonl.replay.lock``; not matched by ``replay-*``)."""
    return path.with_name(path.name + ".replay.lock")


def replay_file(path: Path, config: SlackConfig) -> ReplayResult:
    """Resend every message in ``path`` with ``config``; keep (re-append) what fails.

    The file is moved aside first, so messages dead-lettered meanwhile by a running
    process land in a fresh file and are not lost or sent twice. One replay at a time
    per file (an ``flock`` on its replay lock): a concurrent one returns ``busy`` at
    once instead of resending another replay's in-progress file.
    Progress is persisted: entries delivered before an interruption are not resent.
    """
    result = ReplayResult()
    with file_lock(replay_lock_path(path), None, "") as locked:
        if not locked:
            result.busy = True
            return result
        _replay_locked(path, config, result)
    return result


def _replay_locked(path: Path, config: SlackConfig, result: ReplayResult) -> None:
    sources = [p for p in [claim(path)] if p is not None]
    sources += sorted(path.parent.glob(f"{path.name}.replay-*"))  # left by an interrupted replay
    if not sources:
        return
    notifier = SlackNotifier(config)  # not subscribed: used only to send, with threads
    try:
        for source in dict.fromkeys(sources):
            entries = list(read_entries(source))
            kept: list[dict] = []
            done = 0
            try:
                for entry, message in entries:
                    try:
                        notifier.send(message)
                        result.delivered += 1
                    except Exception as exc:  # DeliveryError, or anything unexpected: keep it, go on
                        reason = exc if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
                        entry["reason"] = redact(reason)[:500]
                        entry["replay_attempts"] = int(entry.get("replay_attempts", 0)) + 1
                        kept.append(entry)
                    done += 1
            finally:
                if done < len(entries):  # interrupted: keep only what was not delivered, for next time
                    rewrite_entries(source, kept + [e for e, _m in entries[done:]])
            if kept:
                append_entries(path, kept)
            result.kept += len(kept)
            source.unlink()
    finally:
        notifier.close(timeout=1.0)


@click.group("slack")
def slack() -> None:
    """Slack notifications (configure with SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN + SLACK_CHANNEL)."""


@slack.command("replay")
@click.option("--file", "file_", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Dead-letter file (default: $MLFLOW_MONITOR_HOME/dead_letter/slack.jsonl).")
def replay(file_: Optional[Path]) -> None:
    """Resend undelivered Slack messages with the current env config; remove what got through."""
    config = SlackConfig.resolve(None)
    if config is None:
        raise click.ClickException("Slack is not configured: set SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN "
                                   "and SLACK_CHANNEL")
    path = file_ or default_path()
    result = replay_file(path, config)
    if result.busy:
        raise click.ClickException(f"another `mlflow-monitor slack replay` is running on {path}; try again "
                                   "when it is done")
    click.echo(f"replayed {result.delivered} message(s) from {path}; {result.kept} kept for a later replay")
    if result.kept:
        sys.exit(1)
