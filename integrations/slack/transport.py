"""Sending one rendered message with slack-sdk: incoming webhook or Web API (bot token).

Retries are slack-sdk's own ``RetryHandler`` objects (:mod:`.retries`), passed to the
client. The clients log through a logger that redacts secrets (:mod:`.sdk_logging`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Protocol

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.messages import SlackMessage
from mlflow_monitor.integrations.slack.retries import retry_handlers
from mlflow_monitor.integrations.slack.sdk_logging import sdk_logger
from mlflow_monitor.redaction import redact


class DeliveryError(Exception):
    """Slack did not take the message; the text is already free of secrets."""


@dataclasses.dataclass(frozen=True)
class Sent:
    """Where a message landed: the channel and its ``ts`` (None for webhooks: no threads)."""

    channel: Optional[str]
    ts: Optional[str]  # None for webhooks (no threads)


class Transport(Protocol):
    supports_threads: bool

    def send(self, message: SlackMessage, thread: Optional[tuple[str, str]] = None) -> Sent:
        """Deliver ``message`` (as a reply when ``thread`` = (channel, ts)); raise DeliveryError."""
        ...


class WebhookTransport:
    """Incoming webhook (``SLACK_WEBHOOK_URL``): top-level messages to the webhook's channel."""

    supports_threads = False

    def __init__(self, config: SlackConfig) -> None:
        assert config.webhook_url
        self._client = WebhookClient(url=config.webhook_url, timeout=config.timeout_s,  # type: ignore[arg-type]
                                     logger=sdk_logger(), retry_handlers=retry_handlers(config))

    def send(self, message: SlackMessage, thread: Optional[tuple[str, str]] = None) -> Sent:
        try:
            resp = self._client.send(text=message.text, blocks=message.blocks)
        except Exception as exc:
            raise DeliveryError(f"webhook request failed: {type(exc).__name__}: {redact(exc)}") from None
        if resp.status_code != 200:
            raise DeliveryError(f"webhook answered HTTP {resp.status_code}: {redact(resp.body)[:200]}")
        return Sent(channel=None, ts=None)


class WebApiTransport:
    """Bot token (``SLACK_BOT_TOKEN``) + channel: ``chat.postMessage``, with threads."""

    supports_threads = True

    def __init__(self, config: SlackConfig) -> None:
        assert config.token and config.channel
        self.channel = config.channel
        kwargs = {"base_url": config.api_url} if config.api_url else {}
        self._client = WebClient(token=config.token, timeout=config.timeout_s,  # type: ignore[arg-type]
                                 logger=sdk_logger(), retry_handlers=retry_handlers(config), **kwargs)

    def send(self, message: SlackMessage, thread: Optional[tuple[str, str]] = None) -> Sent:
        channel, thread_ts = thread if thread else (message.channel or self.channel, None)
        try:
            resp = self._client.chat_postMessage(channel=channel, text=message.text, blocks=message.blocks,
                                                 thread_ts=thread_ts)
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else None
            status = exc.response.status_code if exc.response is not None else "?"
            raise DeliveryError(f"chat.postMessage failed: HTTP {status} {error or ''}".strip()) from None
        except Exception as exc:
            raise DeliveryError(f"chat.postMessage request failed: {type(exc).__name__}: {redact(exc)}") from None
        return Sent(channel=resp.get("channel"), ts=resp.get("ts"))


def build_transport(config: SlackConfig) -> Transport:
    """The transport ``config`` asks for: Web API with a bot token, else the webhook."""
    return WebApiTransport(config) if config.mode == "web_api" else WebhookTransport(config)
