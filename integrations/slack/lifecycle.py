"""The process-wide Slack notifier: :func:`enable`, :func:`disable`, :func:`get_notifier`.

``enable`` is also the ``mlflow_monitor.notifiers`` entry point (``slack``), through
which services turn Slack on (:func:`mlflow_monitor.events.enable_notifiers`). At exit
the notifier is flushed (bounded) and stays subscribed, closed, so later events are
dead-lettered rather than dropped.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Any, Mapping, Optional, Union

from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.notifier import SlackNotifier
from mlflow_monitor.redaction import redact

_logger = logging.getLogger(__name__)

_lock = threading.RLock()
_notifier: Optional[SlackNotifier] = None
_closed_at_exit: Optional[SlackNotifier] = None  # closed but subscribed: dead-letters late events
_logged_off = False
_atexit_registered = False


def enable(config: Union[Mapping[str, Any], str, None] = None) -> Optional[SlackNotifier]:
    """Start (or return) the process-wide notifier; None when Slack is not configured.

    ``config``: a recipe-style ``notify:`` mapping (``channel``, ``webhook_url_env``,
    ``token_env``, ``min_interval_s``, ...), a channel name, or None (env vars only:
    ``SLACK_WEBHOOK_URL``, or ``SLACK_BOT_TOKEN`` + ``SLACK_CHANNEL``). Idempotent: the
    same settings return the running notifier; different ones replace it. Never raises.
    """
    global _notifier, _logged_off, _atexit_registered
    try:
        with _lock:
            cfg = SlackConfig.resolve(config)
            if cfg is None:
                if _notifier is None and not _logged_off:
                    _logged_off = True
                    _logger.info("mlflow-monitor: Slack notifications off (set SLACK_WEBHOOK_URL, or "
                                 "SLACK_BOT_TOKEN and SLACK_CHANNEL)")
                return _notifier
            if _notifier is not None:
                if config is None or _notifier.config == cfg:
                    return _notifier
                _notifier.close()
            _drop_closed_at_exit()
            _notifier = SlackNotifier(cfg).start()
            if not _atexit_registered:
                atexit.register(close_at_exit)
                _atexit_registered = True
            _logger.info("mlflow-monitor: Slack notifications on (%s%s)", cfg.mode,
                         f", channel {cfg.channel}" if cfg.mode == "web_api" else "")
            return _notifier
    except Exception as exc:
        _logger.error("mlflow-monitor: Slack notifications off: %s", redact(exc))
        return None


def disable(timeout: Optional[float] = None) -> None:
    """Unsubscribe and flush (at most ``timeout`` s, default the config's flush_timeout_s)."""
    global _notifier
    with _lock:
        notifier, _notifier = _notifier, None
        _drop_closed_at_exit()
    if notifier is not None:
        notifier.close(timeout)


def get_notifier() -> Optional[SlackNotifier]:
    """The running notifier, or None."""
    return _notifier


def _drop_closed_at_exit() -> None:
    """Unsubscribe the notifier the exit handler left closed (it stops dead-lettering late events)."""
    global _closed_at_exit
    late, _closed_at_exit = _closed_at_exit, None
    if late is not None:
        late.unsubscribe()


def close_at_exit() -> None:
    """Bounded flush at exit; the notifier stays subscribed, closed, so events published
    after this handler (atexit runs LIFO: the pipeline's final flush, run summaries) are
    dead-lettered rather than dropped."""
    global _notifier, _closed_at_exit
    try:
        with _lock:
            notifier, _notifier = _notifier, None
            _drop_closed_at_exit()
            _closed_at_exit = notifier
        if notifier is not None:
            notifier.close(keep_subscribed=True)
    except Exception:  # never raise at interpreter exit
        pass
