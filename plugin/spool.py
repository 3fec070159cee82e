"""Append-only on-disk spool for metric points that could not reach the tracking store.

One spool file per (process, tracking URI): ``<MLFLOW_MONITOR_HOME>/spool/<uuid>.jsonl``.
The first line is a JSON header naming the tracking URI; every other line is one point,
``[run_id, key, value, timestamp_ms, step]``. A sidecar ``.offset`` file records how many
bytes were already delivered, so a replay resumes where the last one stopped and points
are sent in the order they were written. The owning process holds an exclusive
``flock`` on the file; another process adopts (and replays) only files nobody holds.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from pathlib import Path
from typing import Iterator, Optional

from mlflow_monitor.paths import spool_dir

_logger = logging.getLogger(__name__)

Point = tuple  # (run_id, key, value, timestamp_ms, step)
_HEADER_KEY = "mlflow_monitor_spool"


class Spool:
    """An append-only JSON-lines spool for one tracking URI, owned by this process."""

    def __init__(self, path: Path, tracking_uri: str, _fh=None) -> None:
        self.path = Path(path)
        self.tracking_uri = tracking_uri
        self._offset_path = self.path.with_suffix(".offset")
        if _fh is None:
            _fh = open(self.path, "a+b")
            fcntl.flock(_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _fh.seek(0, os.SEEK_END) == 0:
                header = {_HEADER_KEY: 1, "tracking_uri": tracking_uri, "pid": os.getpid()}
                _fh.write((json.dumps(header) + "\n").encode())
                _fh.flush()
        self._fh = _fh
        self._fh.seek(0)
        self._header_end = len(self._fh.readline())
        self._read_offset = max(self._load_offset(), self._header_end)

    # -- creation / adoption ------------------------------------------------------
    @classmethod
    def create(cls, tracking_uri: str, directory: Optional[Path] = None) -> "Spool":
        directory = Path(directory) if directory else spool_dir()
        return cls(directory / f"{uuid.uuid4().hex}.jsonl", tracking_uri)

    @classmethod
    def adopt_orphans(cls, directory: Optional[Path] = None) -> Iterator["Spool"]:
        """Yield spools left behind by processes that are gone (their lock is free)."""
        directory = Path(directory) if directory else spool_dir()
        for path in sorted(directory.glob("*.jsonl")):
            try:
                fh = open(path, "a+b")
            except OSError:
                continue
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # a live process owns it
                fh.close()
                continue
            fh.seek(0)
            try:
                header = json.loads(fh.readline() or b"{}")
                uri = header["tracking_uri"]
            except (ValueError, KeyError):
                _logger.warning("mlflow-monitor: ignoring unreadable spool file %s", path)
                fh.close()
                continue
            yield cls(path, uri, _fh=fh)

    # -- writing ---------------------------------------------------------------------
    def append(self, points: list[Point]) -> None:
        """Append points durably (flushed to the OS; fsync on close)."""
        if not points:
            return
        data = "".join(json.dumps(p, allow_nan=True) + "\n" for p in points).encode()
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(data)
        self._fh.flush()

    # -- replay ------------------------------------------------------------------------
    def pending(self) -> bool:
        return self._read_offset < self._size()

    def pending_points(self) -> int:
        self._fh.seek(self._read_offset)
        return sum(1 for _ in self._fh)

    def read(self, max_points: int) -> tuple[list[Point], int]:
        """Return up to ``max_points`` undelivered points and the offset just after them."""
        self._fh.seek(self._read_offset)
        points: list[Point] = []
        offset = self._read_offset
        for line in self._fh:
            if not line.endswith(b"\n"):
                break  # a torn last line (crash mid-write): stop before it
            offset += len(line)
            try:
                points.append(tuple(json.loads(line)))
            except ValueError:
                _logger.warning("mlflow-monitor: skipping a corrupt line in %s", self.path)
                continue
            if len(points) >= max_points:
                break
        return points, offset

    def commit(self, offset: int) -> None:
        """Mark everything before ``offset`` as delivered (atomic sidecar update)."""
        self._read_offset = offset
        tmp = self._offset_path.with_suffix(".offset.tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self._offset_path)
        if not self.pending():
            self._truncate()

    def close(self) -> None:
        """Release the file; delete it when fully delivered."""
        if self._fh.closed:
            return
        done = not self.pending()
        try:
            os.fsync(self._fh.fileno())
        except OSError:
            pass
        self._fh.close()
        if done:
            for p in (self.path, self._offset_path):
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass

    # -- internals -----------------------------------------------------------------------
    def _size(self) -> int:
        return self._fh.seek(0, os.SEEK_END)

    def _load_offset(self) -> int:
        try:
            return int(self._offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _truncate(self) -> None:
        """Everything was delivered: drop the points, keep the header, reset the offset."""
        self._fh.truncate(self._header_end)
        self._fh.flush()
        self._read_offset = self._header_end
        try:
            self._offset_path.unlink()
        except FileNotFoundError:
            pass
