"""Slack threads per model version and per training run, remembered in MLflow tags.

The first message for a model version (or a run) starts a thread; later ones reply
in it. The thread's ``ts`` and channel are kept as tags on that model version (or
run), so a later process (e.g. the next promotion) finds the same thread.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional

from mlflow_monitor.integrations.slack_messages import ThreadRef

_logger = logging.getLogger(__name__)

TAG_TS = "mlflow_monitor.slack.thread_ts"
TAG_CHANNEL = "mlflow_monitor.slack.thread_channel"


class ThreadStore:
    """Maps a :class:`ThreadRef` to ``(channel, ts)``: in memory, backed by MLflow tags."""

    def __init__(self, client_factory: Optional[Callable[[], Any]] = None) -> None:
        self._client_factory = client_factory or _default_client
        self._cache: dict[ThreadRef, tuple[str, str]] = {}
        self._lock = threading.Lock()

    def lookup(self, ref: ThreadRef) -> Optional[tuple[str, str]]:
        with self._lock:
            if ref in self._cache:
                return self._cache[ref]
        try:
            tags = self._tags(ref)
        except Exception as exc:  # the thread is a nicety: never fail delivery over it
            _logger.debug("mlflow-monitor: no Slack thread for %s: %s", ref, exc)
            return None
        if tags.get(TAG_TS) and tags.get(TAG_CHANNEL):
            found = (tags[TAG_CHANNEL], tags[TAG_TS])
            with self._lock:
                self._cache[ref] = found
            return found
        return None

    def remember(self, ref: ThreadRef, channel: str, ts: str) -> None:
        with self._lock:
            self._cache[ref] = (channel, ts)
        try:
            client = self._client_factory()
            if ref.kind == "model_version":
                name, version = ref.key
                client.set_model_version_tag(name, version, TAG_TS, ts)
                client.set_model_version_tag(name, version, TAG_CHANNEL, channel)
            else:
                (run_id,) = ref.key
                client.set_tag(run_id, TAG_TS, ts)
                client.set_tag(run_id, TAG_CHANNEL, channel)
        except Exception as exc:
            _logger.warning("mlflow-monitor: could not store the Slack thread of %s %s in MLflow: %s",
                            ref.kind, "/".join(ref.key), exc)

    def _tags(self, ref: ThreadRef) -> dict[str, str]:
        client = self._client_factory()
        if ref.kind == "model_version":
            name, version = ref.key
            return dict(client.get_model_version(name, version).tags or {})
        (run_id,) = ref.key
        return dict(client.get_run(run_id).data.tags or {})


def _default_client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()
