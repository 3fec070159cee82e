"""Where the Slack notifier's settings come from: a ``notify:`` mapping, then env vars.

Secrets are never read from the mapping itself (recipes are stored as MLflow tags):
the mapping names the env vars that hold them (``webhook_url_env``, ``token_env``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping, Optional, Union

from mlflow_monitor.redaction import register_proxy_credentials, register_secret

_logger = logging.getLogger(__name__)

ENV_WEBHOOK_URL = "SLACK_WEBHOOK_URL"
ENV_BOT_TOKEN = "SLACK_BOT_TOKEN"
ENV_CHANNEL = "SLACK_CHANNEL"
ENV_API_URL = "SLACK_API_URL"  # Web API base URL (a proxy, or a local stub); not a secret

_SECRET_KEYS = ("token", "bot_token", "webhook_url", "webhook")
_KNOWN_KEYS = {
    "channel", "webhook_url_env", "webhook_env", "token_env", "api_url", "min_interval_s", "queue_size",
    "timeout_s", "max_retries", "max_retry_after_s", "retry_backoff_s", "flush_timeout_s",
    "max_drifted_columns", "enabled", "slack",
}


@dataclasses.dataclass(frozen=True)
class SlackConfig:
    """Resolved notifier settings. ``repr`` never shows the token or webhook URL."""

    webhook_url: Optional[str] = dataclasses.field(default=None, repr=False)
    token: Optional[str] = dataclasses.field(default=None, repr=False)
    channel: Optional[str] = None
    api_url: Optional[str] = None
    min_interval_s: float = 600.0  # throttle window per dedup key (e.g. one NaN alert per run)
    queue_size: int = 1000
    timeout_s: float = 10.0  # per HTTP request
    max_retries: int = 3  # total retries per message across all retry handlers
    max_retry_after_s: float = 60.0  # a longer Retry-After dead-letters instead of waiting
    retry_backoff_s: float = 0.5  # backoff factor for 5xx / connection errors
    flush_timeout_s: float = 5.0  # bounded flush at exit / disable()
    max_drifted_columns: int = 10

    def __post_init__(self) -> None:
        register_secret(self.token)  # however the config was built, its secrets are redacted
        register_secret(self.webhook_url)
        register_proxy_credentials()

    @property
    def mode(self) -> str:
        """``"web_api"`` (bot token: threads) or ``"webhook"`` (top-level messages)."""
        return "web_api" if self.token else "webhook"

    @classmethod
    def resolve(cls, config: Union[Mapping[str, Any], str, None] = None) -> Optional["SlackConfig"]:
        """Settings from ``config`` then env vars; None when no way to send is configured.

        ``config`` is a recipe-style ``notify:`` mapping, a channel name (str), or None.
        """
        if isinstance(config, str):
            config = {"channel": config}
        cfg = dict(config or {})
        if isinstance(cfg.get("slack"), Mapping):  # notify: {slack: {...}}
            cfg = {**cfg, **cfg.pop("slack")}
        for key in _SECRET_KEYS:
            if key in cfg:
                cfg.pop(key)
                _logger.warning("mlflow-monitor: ignoring notify key %r: put secrets in env vars and name "
                                "them with 'token_env' / 'webhook_url_env'", key)
        unknown = set(cfg) - _KNOWN_KEYS
        if unknown:
            _logger.debug("mlflow-monitor: unknown Slack notify keys ignored: %s", sorted(unknown))
        if cfg.get("enabled") is False:
            return None

        token = os.environ.get(str(cfg.get("token_env") or ENV_BOT_TOKEN)) or None
        webhook_var = cfg.get("webhook_url_env") or cfg.get("webhook_env") or ENV_WEBHOOK_URL
        webhook_url = os.environ.get(str(webhook_var)) or None
        channel = cfg.get("channel") or os.environ.get(ENV_CHANNEL) or None
        if token and not channel:
            if not webhook_url:
                _logger.warning("mlflow-monitor: a Slack bot token is set but no channel "
                                "(set SLACK_CHANNEL or notify: channel); Slack notifications off")
                return None
            token = None  # fall back to the webhook
        if not token and not webhook_url:
            return None
        numbers = {k: type(getattr(cls, k))(cfg[k]) for k in (
            "min_interval_s", "queue_size", "timeout_s", "max_retries", "max_retry_after_s",
            "retry_backoff_s", "flush_timeout_s", "max_drifted_columns") if cfg.get(k) is not None}
        return cls(webhook_url=webhook_url, token=token, channel=channel,
                   api_url=cfg.get("api_url") or os.environ.get(ENV_API_URL) or None, **numbers)
