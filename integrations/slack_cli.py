"""``mlflow-monitor slack ...``: resend dead-lettered Slack messages."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Optional

import click

from mlflow_monitor.integrations.slack_config import SlackConfig
from mlflow_monitor.integrations.slack_dead_letter import append_entries, claim, default_path, read_entries
from mlflow_monitor.integrations.slack_redact import redact
from mlflow_monitor.integrations.slack_transport import DeliveryError


@dataclasses.dataclass
class ReplayResult:
    delivered: int = 0
    kept: int = 0


def replay_file(path: Path, config: SlackConfig) -> ReplayResult:
    """Resend every message in ``path`` with ``config``; keep (re-append) what fails.

    The file is moved aside first, so messages dead-lettered meanwhile by a running
    process land in a fresh file and are not lost or sent twice.
    """
    from mlflow_monitor.integrations.slack import SlackNotifier

    result = ReplayResult()
    sources = [p for p in [claim(path)] if p is not None]
    sources += sorted(path.parent.glob(f"{path.name}.replay-*"))  # left by an interrupted replay
    if not sources:
        return result
    notifier = SlackNotifier(config)  # not subscribed: used only to send, with threads
    try:
        for source in dict.fromkeys(sources):
            kept = []
            for entry, message in read_entries(source):
                try:
                    notifier.send(message)
                    result.delivered += 1
                except DeliveryError as exc:
                    entry["reason"] = redact(exc)[:500]
                    entry["replay_attempts"] = int(entry.get("replay_attempts", 0)) + 1
                    kept.append(entry)
            if kept:
                append_entries(path, kept)
            result.kept += len(kept)
            source.unlink()
    finally:
        notifier.close(timeout=1.0)
    return result


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
    click.echo(f"replayed {result.delivered} message(s) from {path}; {result.kept} kept for a later replay")
    if result.kept:
        sys.exit(1)
