"""The retry strategy: slack-sdk's own ``RetryHandler`` objects, passed to the clients.

429 honouring ``Retry-After`` (capped: a longer wait dead-letters instead), 5xx, and
connection errors (timeouts included), each with ``max_retries`` from the config.
"""

from __future__ import annotations

from http.client import RemoteDisconnected
from urllib.error import URLError

from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.http_retry.handler import RetryHandler

from mlflow_monitor.integrations.slack.config import SlackConfig


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
    """The handlers for one client: rate limits, server errors, connection errors."""
    backoff = BackoffRetryIntervalCalculator(backoff_factor=config.retry_backoff_s)
    return [
        BoundedRateLimitRetryHandler(max_retry_count=config.max_retries, max_wait_s=config.max_retry_after_s),
        ServerErrorRetryHandler(max_retry_count=config.max_retries, interval_calculator=backoff),
        ConnectionErrorRetryHandler(
            max_retry_count=config.max_retries, interval_calculator=backoff,
            error_types=[URLError, ConnectionResetError, RemoteDisconnected, TimeoutError, ConnectionError]),
    ]
