"""Closed partial windows waiting on disk for delivery (``<state_dir>/pending/<worker>/``).

A partial is two files, written atomically (temporary name, then rename), mode 0600 in
0700 folders: ``<window_id>__<seq>.parquet`` (the row sample) first, then
``<window_id>__<seq>.json`` (the state; its presence means the partial is whole). The
worker holds an exclusive ``flock`` on its folder's ``.lock``; a folder whose lock is
free belongs to a worker that is gone, and any live worker adopts and delivers it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
from pathlib import Path
from typing import IO, Iterator, Optional

from mlflow_monitor.paths import monitor_home, open_private, private_dir
from mlflow_monitor.windows import WindowState

__all__ = ["PendingPartial", "WindowSpool", "default_state_dir"]

_logger = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def default_state_dir() -> Path:
    """``$MLFLOW_MONITOR_HOME/production``."""
    return private_dir(monitor_home() / "production")


def safe_name(text: str) -> str:
    """``text`` as one path component (anything but ``[A-Za-z0-9_.-]`` becomes ``_``)."""
    return _SAFE.sub("_", text)[:200] or "_"


class PendingPartial:
    """One partial on disk: its state file and sample file."""

    def __init__(self, json_path: Path) -> None:
        self.json_path = json_path
        self.sample_path = json_path.with_suffix(".parquet")
        stem = json_path.stem
        self.window_id, _, seq = stem.rpartition("__")
        self.seq = int(seq) if seq.isdigit() else 0
        self.worker_id = json_path.parent.name

    def load(self) -> WindowState:
        data = json.loads(self.json_path.read_text(encoding="utf-8"))
        blob = self.sample_path.read_bytes() if self.sample_path.exists() else None
        return WindowState.from_dict(data["state"], blob)

    def meta(self) -> dict:
        return json.loads(self.json_path.read_text(encoding="utf-8"))

    def remove(self) -> None:
        for path in (self.sample_path, self.json_path):
            try:
                path.unlink()
            except FileNotFoundError:
                pass


class WindowSpool:
    """The pending folder of one worker, plus adoption of folders left by dead workers."""

    def __init__(self, root: Path, model_name: str, version: str, worker_id: str) -> None:
        self.root = private_dir(Path(root) / safe_name(model_name) / safe_name(str(version)) / "pending")
        self.worker_id = worker_id
        self.folder = private_dir(self.root / safe_name(worker_id))
        self._lock: Optional[IO[bytes]] = open_private(self.folder / ".lock", "ab")
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def write(self, state: WindowState, seq: int, meta: dict) -> PendingPartial:
        """Write one partial (atomically); raises ``OSError`` (disk full, ...) with nothing left behind."""
        stem = f"{state.key.window_id}__{seq:06d}"
        final_json = self.folder / f"{stem}.json"
        final_sample = final_json.with_suffix(".parquet")
        tmp_json = self.folder / f".{stem}.json.tmp"
        tmp_sample = self.folder / f".{stem}.parquet.tmp"
        try:
            with open_private(tmp_sample, "wb") as fh:
                fh.write(state.sample.to_parquet())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_sample, final_sample)
            with open_private(tmp_json, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({**meta, "state": state.to_dict()}, allow_nan=True))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_json, final_json)
        except BaseException:
            for path in (tmp_json, tmp_sample, final_sample):
                try:
                    path.unlink()
                except OSError:
                    pass
            raise
        return PendingPartial(final_json)

    def pending(self) -> Iterator[PendingPartial]:
        """This worker's partials, then those of dead workers (their folder lock is free)."""
        yield from self._in(self.folder)
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.folder):
            lock_path = folder / ".lock"
            try:
                fh = open(lock_path, "ab")
            except OSError:
                continue
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # its worker is alive and delivers its own
                fh.close()
                continue
            try:
                found = list(self._in(folder))
                if not found:
                    _remove_empty(folder)
                yield from found
            finally:
                fh.close()

    @staticmethod
    def _in(folder: Path) -> Iterator[PendingPartial]:
        try:
            names = sorted(folder.glob("*.json"))
        except OSError:
            return
        for path in names:
            yield PendingPartial(path)

    def count(self) -> int:
        """Partials of this worker still on disk."""
        return sum(1 for _ in self.folder.glob("*.json"))

    def reject(self, partial: PendingPartial, why: str) -> Path:
        """Move an unreadable partial to ``<root>/../rejected/`` (kept for inspection, never
        retried) and return where it went."""
        target = private_dir(self.root.parent / "rejected")
        for path in (partial.json_path, partial.sample_path):
            if path.exists():
                os.replace(path, target / f"{partial.worker_id}__{path.name}")
        _logger.warning("mlflow-monitor: moved unreadable window partial %s to %s: %s",
                        partial.json_path.name, target, why)
        return target

    def close(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _remove_empty(folder: Path) -> None:
    try:
        (folder / ".lock").unlink()
        folder.rmdir()
    except OSError:
        pass
