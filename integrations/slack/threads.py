"""Slack threads per model version and per training run, remembered in MLflow tags.

The first message for a model version (or a run) starts a thread; later ones reply
in it. The thread's ``ts`` and channel are kept as tags on that model version (or
run), so a later process (e.g. the next promotion) finds the same thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional

from mlflow_monitor.bounded_client import BoundedClient, StoreUnavailable, store_uri_for_run
from mlflow_monitor.integrations.slack.messages import ThreadRef

_logger = logging.getLogger(__name__)

TAG_TS = "mlflow_monitor.slack.thread_ts"
TAG_CHANNEL = "mlflow_monitor.slack.thread_channel"


class ThreadStore:
    """Maps a :class:`ThreadRef` to ``(channel, ts)``: in memory, backed by MLflow tags.

    The tags are read and written with bounded calls (:class:`BoundedClient`: for an
    http(s) store one request without retries and a short timeout, then a cool-down),
    on the run's bound tracking URI, so a tracking server that is down costs a message
    its thread, never minutes of delivery.
    """

    def __init__(self, store: Optional[BoundedClient] = None) -> None:
        self.store = store or BoundedClient()
        self._cache: dict[ThreadRef, tuple[str, str]] = {}
        self._unknown: set[ThreadRef] = set()  # lookup failed: do not overwrite a thread we could not see
        self._lock = threading.Lock()

    def lookup(self, ref: ThreadRef) -> Optional[tuple[str, str]]:
        """``(channel, ts)`` of the thread for ``ref``, from memory or MLflow tags; None if none (never raises)."""
        with self._lock:
            if ref in self._cache:
                return self._cache[ref]
        try:
            tags = self._tags(ref)
        except Exception as exc:  # the thread is a nicety: never fail delivery over it
            with self._lock:
                self._unknown.add(ref)
            _logger.debug("mlflow-monitor: no Slack thread for %s: %s", ref, exc)
            return None
        with self._lock:
            self._unknown.discard(ref)
        if tags.get(TAG_TS) and tags.get(TAG_CHANNEL):
            found = (tags[TAG_CHANNEL], tags[TAG_TS])
            with self._lock:
                self._cache[ref] = found
            return found
        return None

    def remember(self, ref: ThreadRef, channel: str, ts: str) -> None:
        """Keep the thread ``ref`` started, in memory and as MLflow tags (best effort, never raises)."""
        with self._lock:
            self._cache[ref] = (channel, ts)
            if ref in self._unknown:  # MLflow may hold an older thread we could not read: keep it
                return
        try:
            if ref.kind == "model_version":
                name, version = ref.key
                self.store.set_model_version_tag(name, version, TAG_TS, ts)
                self.store.set_model_version_tag(name, version, TAG_CHANNEL, channel)
            else:
                (run_id,) = ref.key
                uri = store_uri_for_run(run_id)
                self.store.set_run_tag(run_id, TAG_TS, ts, uri)
                self.store.set_run_tag(run_id, TAG_CHANNEL, channel, uri)
        except Exception as exc:
            log = _logger.debug if isinstance(exc, StoreUnavailable) and exc.skipped else _logger.warning
            log("mlflow-monitor: could not store the Slack thread of %s %s in MLflow: %s",
                ref.kind, "/".join(ref.key), exc)

    def _tags(self, ref: ThreadRef) -> dict[str, str]:
        if ref.kind == "model_version":
            name, version = ref.key
            return self.store.model_version_tags(name, version)
        (run_id,) = ref.key
        return self.store.run_tags(run_id, store_uri_for_run(run_id))
