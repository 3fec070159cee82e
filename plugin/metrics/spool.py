"""Append-only on-disk spool for metric points that could not reach the tracking store.

One spool file per (process, tracking URI): ``<MLFLOW_MONITOR_HOME>/spool/<uuid>.jsonl``.
The first line is a JSON header naming the tracking URI (without ``user:password@``); every other line is one point,
``[run_id, key, value, timestamp_ms, step]`` (:meth:`MetricPoint.to_row`). A sidecar
``.offset`` file records how many bytes were already delivered, so a replay resumes
where the last one stopped and points are sent in the order they were written. The
owning process holds an exclusive ``flock`` on the file; another process adopts (and
replays) only files nobody holds. Files are mode 0600 in a 0700 folder.

Only the flusher thread reads and writes a spool; :meth:`Spool.pending` reads two
integers and is safe to call from any thread.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import IO, Iterator, Optional

from mlflow_monitor.metrics.point import MetricPoint
from mlflow_monitor.paths import open_private, spool_dir, write_private_text
from mlflow_monitor.redaction import strip_credentials

__all__ = ["Spool"]

_logger = logging.getLogger(__name__)

_HEADER_KEY = "mlflow_monitor_spool"


class Spool:
    """An append-only JSON-lines spool for one tracking URI, owned by this process."""

    def __init__(self, path: Path, tracking_uri: str, _fh: Optional[IO[bytes]] = None, created: float = 0.0) -> None:
        self.path = Path(path)
        self.tracking_uri = tracking_uri
        self.created = created or time.time()
        self._offset_path = self.path.with_suffix(".offset")
        if _fh is None:
            _fh = open_private(self.path, "a+b")
            fcntl.flock(_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _fh.seek(0, os.SEEK_END) == 0:
                # the header never holds credentials: a URI's user:password@ is left out, and the
                # process that adopts the file supplies its own (see MetricsPipeline._adopt_orphans)
                header = {_HEADER_KEY: 1, "tracking_uri": strip_credentials(tracking_uri), "pid": os.getpid(),
                          "created": self.created}
                _fh.write((json.dumps(header) + "\n").encode())
                _fh.flush()
        self._fh = _fh
        self._fh.seek(0)
        self._header_end = len(self._fh.readline())
        self._end = self._drop_torn_tail()
        self.read_offset = min(max(self._load_offset(), self._header_end), self._end)

    # -- creation / adoption ------------------------------------------------------
    @classmethod
    def create(cls, tracking_uri: str, directory: Optional[Path] = None) -> "Spool":
        directory = Path(directory) if directory else spool_dir()
        return cls(directory / f"{uuid.uuid4().hex}.jsonl", tracking_uri)

    @classmethod
    def adopt_orphans(cls, directory: Optional[Path] = None) -> Iterator["Spool"]:
        """Yield spools left behind by processes that are gone (their lock is free), oldest first."""
        directory = Path(directory) if directory else spool_dir()
        found = []
        for path in directory.glob("*.jsonl"):
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
            found.append(cls(path, uri, _fh=fh, created=float(header.get("created") or path.stat().st_mtime)))
        yield from sorted(found, key=lambda s: s.created)

    # -- writing ---------------------------------------------------------------------
    def append(self, points: list[MetricPoint]) -> None:
        """Append points (flushed to the OS; fsync on close). All or nothing."""
        if not points:
            return
        data = "".join(json.dumps(p.to_row(), allow_nan=True) + "\n" for p in points).encode()
        try:
            self._fh.write(data)
            self._fh.flush()
        except OSError:
            try:  # never leave a torn line behind: cut back to the last whole point
                self._fh.truncate(self._end)
            except OSError:
                pass
            raise
        self._end += len(data)

    # -- replay ------------------------------------------------------------------------
    def pending(self) -> bool:
        return not self._fh.closed and self.read_offset < self._end

    def pending_points(self) -> int:
        self._fh.seek(self.read_offset)
        return sum(1 for _ in self._fh)

    def read_run_batch(self, max_points: int) -> tuple[list[MetricPoint], list[int]]:
        """Up to ``max_points`` undelivered points of ONE run (the next one in the file),
        with the end offset of each, so a partial delivery can be committed exactly."""
        self._fh.seek(self.read_offset)
        points: list[MetricPoint] = []
        offsets: list[int] = []
        offset = self.read_offset
        while len(points) < max_points and offset < self._end:
            line = self._fh.readline()
            if not line:
                break
            try:
                point = MetricPoint.from_row(json.loads(line))
            except ValueError:
                _logger.warning("mlflow-monitor: skipping a corrupt line in %s", self.path)
                offset += len(line)
                if not points:
                    self.commit(offset)
                continue
            if points and point.run_id != points[0].run_id:
                break
            offset += len(line)
            points.append(point)
            offsets.append(offset)
        return points, offsets

    def commit(self, offset: int) -> None:
        """Mark everything before ``offset`` as delivered (atomic sidecar update)."""
        self.read_offset = offset
        if not self.pending():
            self._truncate()
            return
        tmp = self._offset_path.with_suffix(".offset.tmp")
        write_private_text(tmp, str(offset))
        os.replace(tmp, self._offset_path)

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
    def _drop_torn_tail(self) -> int:
        """A writer killed mid-line leaves a line without newline: cut it (it was never whole)."""
        size = self._fh.seek(0, os.SEEK_END)
        if size <= self._header_end:
            return size
        self._fh.seek(size - 1)
        if self._fh.read(1) == b"\n":
            return size
        chunk = 1 << 16
        pos = size
        while pos > self._header_end:
            start = max(self._header_end, pos - chunk)
            self._fh.seek(start)
            idx = self._fh.read(pos - start).rfind(b"\n")
            if idx >= 0:
                end = start + idx + 1
                break
            pos = start
        else:
            end = self._header_end
        _logger.warning("mlflow-monitor: dropped a partially written last line of %s", self.path)
        self._fh.truncate(end)
        return end

    def _load_offset(self) -> int:
        try:
            return int(self._offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _truncate(self) -> None:
        """Everything was delivered: drop the points, keep the header, reset the offset."""
        self._fh.truncate(self._header_end)
        self._fh.flush()
        self._end = self.read_offset = self._header_end
        try:
            self._offset_path.unlink()
        except FileNotFoundError:
            pass
