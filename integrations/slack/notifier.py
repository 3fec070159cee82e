"""The Slack notifier: throttles events, queues them, renders and sends them off the caller's thread.

Events are throttled by key on the publisher's thread (a dict lookup), then queued; one
worker renders them to Block Kit and sends them with slack-sdk (retries: slack-sdk's
RetryHandlers). What cannot be delivered goes to the dead-letter file
(``mlflow-monitor slack replay``). Nothing here blocks the caller or raises into it.
"""

from __future__ import annotations

import collections
import logging
import threading
from typing import Any, Optional

from mlflow_monitor import events
from mlflow_monitor.events import Event
from mlflow_monitor.integrations.slack.config import SlackConfig
from mlflow_monitor.integrations.slack.dead_letter import DeadLetterFile
from mlflow_monitor.integrations.slack.delivery import DeliveryWorker
from mlflow_monitor.integrations.slack.links import MlflowUiLinks
from mlflow_monitor.integrations.slack.messages import SlackMessage
from mlflow_monitor.integrations.slack.renderer import MessageRenderer, plain_fallback
from mlflow_monitor.integrations.slack.threads import ThreadStore
from mlflow_monitor.integrations.slack.throttle import KeyedThrottle
from mlflow_monitor.integrations.slack.transport import DeliveryError, Transport, build_transport
from mlflow_monitor.redaction import redact

_logger = logging.getLogger(__name__)

_Item = tuple[Event, int]  # (event, how many were suppressed before it)


class SlackNotifier:
    """Subscribes to events and delivers them to Slack, off the caller's thread.

    Strategies are passed in (transport, throttle, thread store, dead-letter file,
    renderer); the defaults come from ``config``.
    """

    def __init__(
        self,
        config: SlackConfig,
        *,
        transport: Optional[Transport] = None,
        renderer: Optional[MessageRenderer] = None,
        throttle: Optional[KeyedThrottle] = None,
        threads: Optional[ThreadStore] = None,
        dead_letters: Optional[DeadLetterFile] = None,
    ) -> None:
        self.config = config
        self.transport = transport or build_transport(config)
        self.renderer = renderer or MessageRenderer(MlflowUiLinks.from_env(), config.max_drifted_columns)
        self.throttle = throttle or KeyedThrottle(config.min_interval_s)
        self.threads = threads or ThreadStore()
        self.dead_letters = dead_letters or DeadLetterFile()
        self.stats: collections.Counter[str] = collections.Counter()
        self._worker: DeliveryWorker[_Item] = DeliveryWorker(self._deliver_item, maxsize=config.queue_size)
        self._unsubscribe: Optional[Any] = None
        self._closed = False
        self._lock = threading.Lock()

    # ---- caller side (publisher's thread): cheap, never blocks, never raises --------
    def start(self) -> "SlackNotifier":
        if self._unsubscribe is None:
            self._unsubscribe = events.subscribe(self.notify)
        return self

    def notify(self, event: Event) -> None:
        """Throttle by ``event.dedup_key`` and queue ``event``; overflow goes to the dead-letter file."""
        try:
            suppressed = self.throttle.admit(event.dedup_key, event)
            if suppressed is None:
                self.stats["suppressed"] += 1
                return
            if not self._closed and self._worker.submit((event, suppressed)):
                return
            if self._closed:  # e.g. published by the pipeline's final flush, after our exit handler ran
                reason = "published after the Slack notifier was closed (exit)"
                self.stats["late"] += 1
            else:
                reason = f"queue full ({self.config.queue_size} messages)"
                self.stats["overflow"] += 1
            self._dead_letter_event(event, suppressed, reason)
        except Exception:
            _logger.exception("mlflow-monitor: could not queue a Slack message for %s", type(event).__name__)

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait (bounded) until everything queued so far was delivered or dead-lettered."""
        return self._worker.flush(self.config.flush_timeout_s if timeout is None else timeout)

    def close(self, timeout: Optional[float] = None, *, keep_subscribed: bool = False) -> None:
        """Unsubscribe, send a note for throttled keys, drain for at most ``timeout`` s.

        Whatever is still queued (or in flight) at the deadline is dead-lettered. With
        ``keep_subscribed`` (at exit) the notifier stays subscribed, closed: events
        published later (the pipeline's final flush runs after this exit handler) go
        straight to the dead-letter file, rendered and redacted; :meth:`unsubscribe`
        ends that.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True  # from here notify() dead-letters instead of queueing
        if not keep_subscribed:
            self.unsubscribe()
        for _key, count, event in self.throttle.drain_suppressed():
            if not self._worker.submit((event, -count)):  # negative: a "N more suppressed" note
                self._dead_letter_event(event, -count, "queue full at exit")
        left = self._worker.close(self.config.flush_timeout_s if timeout is None else timeout)
        for event, suppressed in left:
            self._dead_letter_event(event, suppressed, "not delivered before exit (flush timeout)")

    def unsubscribe(self) -> None:
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()

    # ---- worker side ----------------------------------------------------------------
    def send(self, message: SlackMessage) -> None:
        """Deliver one rendered message now (threads included); raises DeliveryError."""
        use_thread = self.transport.supports_threads and message.thread is not None
        thread = self.threads.lookup(message.thread) if use_thread else None  # type: ignore[arg-type]
        sent = self.transport.send(message, thread)
        if use_thread and thread is None and sent.ts and sent.channel:
            self.threads.remember(message.thread, sent.channel, sent.ts)  # type: ignore[arg-type]

    def _deliver_item(self, item: _Item) -> None:
        event, suppressed = item
        message, render_error = self._render(event, suppressed)
        error: Optional[str] = render_error
        if error is None:
            if self._worker.handed_back():  # close() already dead-lettered it: do not send it too
                return
            try:
                self.send(message)
            except DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # a bug or an unexpected client error: still never lost
                _logger.error("mlflow-monitor: unexpected error sending a Slack %s message: %s", message.kind,
                              redact(exc))
                error = f"{type(exc).__name__}: {exc}"
        if not self._worker.settle():  # close() handed it back and recorded it: one record only
            return
        if error is None:
            self.stats["sent"] += 1
        else:
            self._dead_letter(message, error)

    def _render(self, event: Event, suppressed: int) -> tuple[SlackMessage, Optional[str]]:
        """The rendered message, or a plain-text fallback plus why rendering failed (never raises)."""
        try:
            if suppressed < 0:
                return self.renderer.suppressed_summary(event, -suppressed), None
            return self.renderer.render(event, suppressed), None
        except Exception as exc:  # unusual event data: keep the event, as plain text
            self.stats["render_failed"] += 1
            _logger.error("mlflow-monitor: could not render a Slack message for %s: %s", type(event).__name__,
                          redact(exc))
            return plain_fallback(event, suppressed), f"could not render the message: {type(exc).__name__}: {exc}"

    def _dead_letter_event(self, event: Event, suppressed: int, reason: str) -> None:
        message, render_error = self._render(event, suppressed)
        self._dead_letter(message, f"{reason}; {render_error}" if render_error else reason)

    def _dead_letter(self, message: SlackMessage, reason: str) -> None:
        self.stats["dead_lettered"] += 1
        self.dead_letters.write(message, redact(reason))
