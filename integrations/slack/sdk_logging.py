"""The logger slack-sdk clients log through, with the core redactor on it and on slack-sdk's own.

slack-sdk logs the full webhook URL at DEBUG (``Sending a request - url: ...``) and in
its retry messages. The notifier hands its clients :func:`sdk_logger`, and the same
filter (:class:`mlflow_monitor.redaction.SecretRedactor`) sits on slack-sdk's loggers.
The secrets themselves are registered by :class:`~.config.SlackConfig`.
"""

from __future__ import annotations

import logging

from mlflow_monitor.redaction import install_on

SDK_LOGGER_NAME = "mlflow_monitor.integrations.slack.sdk"
SLACK_SDK_LOGGERS = ("slack_sdk.web.base_client", "slack_sdk.webhook.client", "slack_sdk.http_retry")


def sdk_logger() -> logging.Logger:
    """The logger given to slack-sdk clients; installs the redactor on it and on slack-sdk's."""
    install_on(SDK_LOGGER_NAME, *SLACK_SDK_LOGGERS)
    return logging.getLogger(SDK_LOGGER_NAME)
