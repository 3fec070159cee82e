"""Sending one rendered message with slack-sdk: incoming webhook or Web API (bot token).

Retries are slack-sdk's own ``RetryHandler`` objects, passed to the client: 429
honouring ``Retry-After``, 5xx, and connection errors (timeouts included), with a
total cap per message. The clients log through a logger that redacts secrets.
"""

from __future__ import annotations

import dataclasses
from http.client import RemoteDisconnected
from typing import Optional, Protocol
from urllib.error import URLError

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from mlflow_monitor.integrations.slack_config import SlackConfig
from mlflow_monitor.integrations.slack_messages import SlackMessage
from mlflow_monitor.integrations.slack_redact import redact, sdk_logger


class DeliveryError(Exception):
    """Slack did not take the message; the text is already free of secrets."""


@dataclasses.dataclass(frozen=True)
class Sent:
    channel: Optional[str]
    ts: Optional[str]  # None for webhooks (no threads)


class BoundedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """slack-sdk's 429 handler (sleeps ``Retry-After``), except it gives up on waits over ``max_wait_s``.

    A message Slack wants us to hold for longer goes to the dead-letter file instead of
    stalling the worker.
    """

    def __init__(self, max_retry_count: int = 1, max_wait_s: float = 60.0) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.max_wait_s = max_wait_s

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:  # type: ignore[override]
        if not super()._can_retry(state=state, request=request, response=response, error=error):
            return False
        value = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        try:
            wait = float(value[0] if isinstance(value, list) else value)
        except (TypeError, ValueError, IndexError):
            wait = 1.0
        return wait <= self.max_wait_s


def retry_handlers(config: SlackConfig) -> list[RetryHandler]:
    """The retry strategy: slack-sdk handlers sharing one attempt counter (the cap)."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=config.retry_backoff_s)
    return [
        BoundedRateLimitRetryHandler(max_retry_count=config.max_retries, max_wait_s=config.max_retry_after_s),
        ServerErrorRetryHandler(max_retry_count=config.max_retries, interval_calculator=backoff),
        ConnectionErrorRetryHandler(
            max_retry_count=config.max_retries, interval_calculator=backoff,
            error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError, ConnectionError]),
    ]


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
    return WebApiTransport(config) if config.mode == "web_api" else WebhookTransport(config)
