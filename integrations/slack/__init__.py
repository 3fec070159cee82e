"""Slack notifications for gate verdicts, run summaries and training-health alerts.

``enable()`` starts the process-wide :class:`SlackNotifier` (it subscribes to the event
bus; None when Slack is not configured) and ``disable()`` flushes and stops it. Services
reach ``enable`` through the ``mlflow_monitor.notifiers`` entry point. One concept per
module: ``config`` (settings), ``messages`` / ``renderer`` / ``blocks`` / ``links``
(what is sent), ``transport`` / ``retries`` / ``sdk_logging`` (how), ``throttle``,
``delivery`` (the worker), ``threads``, ``dead_letter`` and ``cli`` (replay),
``notifier`` and ``lifecycle``. See docs/slack.md.
"""

from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.lifecycle import disable, enable, get_notifier
from mlflow_monitor.integrations.slack.notifier import SlackNotifier

__all__ = ["SlackConfig", "SlackNotifier", "disable", "enable", "get_notifier"]
