"""Reading a monitoring run's stored windows back (labels, the gate, ``prod status``).

The production service writes, in a model version's monitoring run (artifact root
``mlflow_monitor/prod``): ``partials/<day>/<window_id>/<worker>__<seq>.json|.parquet``
(each worker's partial state and row sample), ``windows/<day>/<window_id>/summary.json``
(the merged window), ``labels/<day>/<window_id>/`` (joined labels and the window's
performance) and ``alerts/<day>/<window_id>/<alert>.json`` (alerts raised). This module
is core: the gate reads production traffic through it without importing the service.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pandas as pd

from mlflow_monitor.windows.granularity import format_granularity, parse_granularity
from mlflow_monitor.windows.sample import HASH_COLUMN, ID_COLUMN
from mlflow_monitor.windows.signing import EvidenceKey, signature_path
from mlflow_monitor.windows.state import PREDICTION_PREFIX

__all__ = [
    "ALERTS", "LABELS", "PARTIALS", "PROD_ROOT", "PROD_RUN_TAG", "PROD_TAG", "WINDOWS", "WINDOW_ROWS", "StoredWindow",
    "find_monitoring_run", "list_windows", "monitors", "tagged_runs", "parse_window_id", "prediction_columns",
    "read_json_artifact", "read_window_labels", "read_window_performance", "read_window_rows",
]

PROD_ROOT = "mlflow_monitor/prod"
PARTIALS = f"{PROD_ROOT}/partials"
WINDOWS = f"{PROD_ROOT}/windows"
LABELS = f"{PROD_ROOT}/labels"
ALERTS = f"{PROD_ROOT}/alerts"
PROD_TAG = "mlflow_monitor.prod"  # on the monitoring run: "<name>/<version>"
PROD_RUN_TAG = "mlflow_monitor.prod.run_id"  # on the model version: the monitoring run's id
# in a window's LABELS folder: one Parquet file per log_labels call, never overwritten
# (``<UTC stamp>-<random>.parquet``, so name order is arrival order), and one JSON per
# performance revision (``<revision:06d>.json``); ``labels.parquet`` / ``performance.json``
# are the layout before these (read, never written)
LABEL_BATCHES = "batches"
# in a window's WINDOWS folder: the union of its merged partials' row samples (written
# before its partials are pruned, so the rows outlive them)
WINDOW_ROWS = "rows.parquet"
PERFORMANCE = "performance"


@dataclasses.dataclass(frozen=True, order=True)
class StoredWindow:
    """A merged window of a monitoring run, by its start and granularity."""

    start: int
    granularity_s: int

    @property
    def end(self) -> int:
        return self.start + self.granularity_s

    @property
    def index(self) -> int:
        """The metric step of the window's values."""
        return self.start // self.granularity_s

    @property
    def day(self) -> str:
        return _dt.datetime.fromtimestamp(self.start, tz=_dt.timezone.utc).strftime("%Y-%m-%d")

    @property
    def window_id(self) -> str:
        stamp = _dt.datetime.fromtimestamp(self.start, tz=_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{format_granularity(self.granularity_s)}"

    def folder(self, root: str) -> str:
        """This window's folder under ``root`` (:data:`PARTIALS`, :data:`WINDOWS`, ...)."""
        return f"{root}/{self.day}/{self.window_id}"


def parse_window_id(window_id: str) -> Optional[StoredWindow]:
    """``20261201T102000Z-5m`` as a :class:`StoredWindow`; ``None`` for another name."""
    stamp, _, gran = window_id.partition("-")
    try:
        start = _dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.timezone.utc)
        return StoredWindow(int(start.timestamp()), parse_granularity(gran))
    except ValueError:
        return None


def _not_found(exc: BaseException) -> bool:
    return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST" or isinstance(
        exc, (FileNotFoundError, NotADirectoryError))


def _list(client: Any, run_id: str, path: str) -> list[Any]:
    try:
        return list(client.list_artifacts(run_id, path))
    except Exception as exc:
        if _not_found(exc):
            return []
        raise


def monitors(run: Any, value: str) -> bool:
    """``run`` is an active run tagged ``mlflow_monitor.prod`` = ``value`` (``<name>/<version>``)."""
    return run.info.lifecycle_stage == "active" and run.data.tags.get(PROD_TAG) == value


def tagged_runs(client: Any, experiment_id: str, value: str) -> list[Any]:
    """The active runs of ``experiment_id`` tagged ``mlflow_monitor.prod`` = ``value``, oldest
    first (start time, then run id): the candidates for a version's monitoring run."""
    quoted = value.replace("\\", "\\\\").replace("'", "\\'")
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PROD_TAG}` = '{quoted}'", max_results=50)
    return sorted((r for r in runs if monitors(r, value)), key=lambda r: (r.info.start_time or 0, r.info.run_id))


def find_monitoring_run(client: Any, model_name: str, version: str, *, registry: Any = None,
                        strict: bool = False) -> Optional[str]:
    """The id of version ``version``'s monitoring run, or ``None`` when it has none.

    The version's ``mlflow_monitor.prod.run_id`` tag when it names an active run tagged
    for this version; else the oldest such run in the source run's experiment (the rule
    the service uses when it creates one). ``registry``: where to read the version
    (default ``client``; the gate passes its registry store). ``strict`` (the gate): only
    the version tag counts, since only the gate's link path writes it (for a policy owner
    or a serving user the recipe names); without it, a tagged run raises ``LookupError``
    instead of being picked (anyone who can write to the experiment can create a run
    with that tag and any start time).
    """
    value = f"{model_name}/{version}"
    mv = (registry or client).get_model_version(model_name, str(version))
    tagged = (mv.tags or {}).get(PROD_RUN_TAG)
    if tagged:
        try:
            if monitors(client.get_run(tagged), value):
                return str(tagged)
        except Exception as exc:
            if not _not_found(exc):
                raise
    if not mv.run_id:
        return None
    runs = tagged_runs(client, client.get_run(mv.run_id).info.experiment_id, value)
    if not runs:
        return None
    if strict:
        raise LookupError(f"{len(runs)} run(s) are tagged {PROD_TAG}={value!r} but the version has no "
                          f"{PROD_RUN_TAG} link naming one: which one the monitor wrote cannot be told (the "
                          "link is set by the serving process of a user the recipe names in "
                          "current.production.serving_users, or by a policy owner)")
    return str(runs[0].info.run_id)


def list_windows(client: Any, run_id: str, *, since: float, until: float) -> list[StoredWindow]:
    """Merged windows (a ``summary.json`` exists) starting in ``[since, until)``, newest first."""
    out: list[StoredWindow] = []
    day = _dt.datetime.fromtimestamp(since, tz=_dt.timezone.utc).date()
    last = _dt.datetime.fromtimestamp(until, tz=_dt.timezone.utc).date()
    while day <= last:
        for entry in _list(client, run_id, f"{WINDOWS}/{day.isoformat()}"):
            window = parse_window_id(Path(entry.path).name)
            if window is not None and since <= window.start < until:
                out.append(window)
        day += _dt.timedelta(days=1)
    return sorted(set(out), reverse=True)


def read_json_artifact(client: Any, run_id: str, path: str) -> Optional[dict[str, Any]]:
    """A JSON artifact of the run, or ``None`` when there is none."""
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception as exc:
            if _not_found(exc):
                return None
            raise
        try:
            data = json.loads(Path(local).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return data if isinstance(data, dict) else None


def read_window_rows(client: Any, run_id: str, window: StoredWindow, *, key: Optional[EvidenceKey] = None,
                     ignored: Optional[list[str]] = None, retry_wait_s: float = 0.0) -> pd.DataFrame:
    """The sampled rows of ``window``: the union of its partials' row samples (those the
    closer pruned live on in the merged window's ``rows.parquet``), one row per
    prediction id. Columns: ``__prediction_id``, the input columns and the prediction
    columns (prefixed ``__prediction__/``). Rows not sampled (``--sample`` below 1, or
    beyond a worker's bottom-k sample) are not here.

    ``key`` (the gate): only files whose evidence signature holds count; the others are
    left out and their paths, with the reason, appended to ``ignored``. ``retry_wait_s``:
    a merged ``rows.parquet`` whose signature holds for other bytes (a re-merge in
    progress) is read again once after that long (0: not)."""
    frames = [*_merged_rows(client, run_id, window, key, ignored, retry_wait_s),
              *_partial_samples(client, run_id, window, key, ignored)]
    if not frames:
        return pd.DataFrame({ID_COLUMN: pd.Series([], dtype=object)})
    rows = pd.concat(frames, ignore_index=True, sort=False) if len(frames) > 1 else frames[0]
    rows = rows.drop_duplicates(subset=ID_COLUMN, keep="first")
    return rows.drop(columns=[HASH_COLUMN], errors="ignore").reset_index(drop=True)


def _signed(key: Optional[EvidenceKey], run_id: str, path: str, data: bytes, sidecar: Optional[bytes],
            ignored: Optional[list[str]]) -> bool:
    """True when there is no key to check with, or ``data``'s signature holds."""
    if key is None:
        return True
    why = key.verify(run_id, path, data, sidecar)
    if why is not None and ignored is not None:
        ignored.append(f"{path} ({why})")
    return why is None


def _read_optional(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _merged_rows(client: Any, run_id: str, window: StoredWindow, key: Optional[EvidenceKey],
                 ignored: Optional[list[str]], retry_wait_s: float = 0.0) -> Iterator[pd.DataFrame]:
    folder = window.folder(WINDOWS)
    names = {Path(e.path).name for e in _list(client, run_id, folder)}
    if WINDOW_ROWS not in names:
        return
    path = f"{folder}/{WINDOW_ROWS}"
    for attempt in (0, 1):
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
            try:
                blob = Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
            except OSError as exc:  # a folder named rows.parquet, say: not the monitor's file
                if key is None:
                    raise
                if ignored is not None:
                    ignored.append(f"{path} (unreadable: {type(exc).__name__})")
                return
            sidecar = None
            if key is not None and signature_path(WINDOW_ROWS) in names:
                sidecar = _read_optional(Path(client.download_artifacts(run_id, signature_path(path), tmp)))
        why = key.verify(run_id, path, blob, sidecar) if key is not None else None
        # a re-merge in progress (its new signature lands before its new rows) is read again
        # once, after ``retry_wait_s``; any other failure is final at once
        if why is None or attempt or not retry_wait_s or not why.startswith("a signature of other bytes"):
            break
        time.sleep(retry_wait_s)
    if not _signed(key, run_id, path, blob, sidecar, ignored):
        return
    frame = pd.read_parquet(io.BytesIO(blob))
    if ID_COLUMN in frame.columns:
        yield frame


def _partial_samples(client: Any, run_id: str, window: StoredWindow, key: Optional[EvidenceKey],
                     ignored: Optional[list[str]]) -> Iterator[pd.DataFrame]:
    folder = window.folder(PARTIALS)
    names = {Path(e.path).name for e in _list(client, run_id, folder)}
    complete = sorted(n for n in names if n.endswith(".parquet") and f"{n[:-8]}.json" in names)
    if not complete:
        return
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_prod_") as tmp:
        local = Path(client.download_artifacts(run_id, folder, tmp))
        for name in complete:
            try:
                blob = (local / name).read_bytes()
            except OSError as exc:  # a folder with a partial's name, say
                if key is None:
                    raise
                if ignored is not None:
                    ignored.append(f"{folder}/{name} (unreadable: {type(exc).__name__})")
                continue
            if not _signed(key, run_id, f"{folder}/{name}", blob, _read_optional(local / signature_path(name)),
                           ignored):
                continue
            frame = pd.read_parquet(io.BytesIO(blob))
            if ID_COLUMN in frame.columns:
                yield frame


def prediction_columns(rows: pd.DataFrame) -> dict[str, str]:
    """``{prediction column: its column in rows}`` of a :func:`read_window_rows` frame."""
    return {str(c)[len(PREDICTION_PREFIX):]: str(c) for c in rows.columns if str(c).startswith(PREDICTION_PREFIX)}


def read_window_labels(client: Any, run_id: str, window: StoredWindow, *, key: Optional[EvidenceKey] = None,
                       ignored: Optional[list[str]] = None) -> tuple[pd.DataFrame, int]:
    """The labels joined to ``window`` (columns ``id``, ``label``; for an id given more
    than once, the latest batch's label) and how many label batches they came from.
    ``key``: only signed batches count (the others go to ``ignored``, as in
    :func:`read_window_rows`)."""
    folder = window.folder(LABELS)
    names = {Path(e.path).name for e in _list(client, run_id, folder)}
    batches = sorted(Path(e.path).name for e in _list(client, run_id, f"{folder}/{LABEL_BATCHES}")
                     if e.path.endswith(".parquet")) if LABEL_BATCHES in names else []
    legacy = "labels.parquet" in names
    frames: list[pd.DataFrame] = []
    counted = 0
    if legacy or batches:
        with tempfile.TemporaryDirectory(prefix="mlflow_monitor_labels_") as tmp:
            if legacy:
                path = f"{folder}/labels.parquet"
                blob = Path(client.download_artifacts(run_id, path, tmp)).read_bytes()
                if _signed(key, run_id, path, blob, None, ignored):  # written before signatures existed
                    frames.append(pd.read_parquet(io.BytesIO(blob)))
                    counted += 1
            if batches:
                local = Path(client.download_artifacts(run_id, f"{folder}/{LABEL_BATCHES}", tmp))
                for name in batches:
                    blob = (local / name).read_bytes()
                    if _signed(key, run_id, f"{folder}/{LABEL_BATCHES}/{name}", blob,
                               _read_optional(local / signature_path(name)), ignored):
                        frames.append(pd.read_parquet(io.BytesIO(blob)))
                        counted += 1
    frames = [f for f in frames if {"id", "label"} <= set(f.columns)]
    if not frames:
        return pd.DataFrame({"id": pd.Series([], dtype=object), "label": pd.Series([], dtype=object)}), 0
    both = pd.concat([f[["id", "label"]] for f in frames], ignore_index=True) if len(frames) > 1 else frames[0]
    both = both.drop_duplicates(subset="id", keep="last").reset_index(drop=True)
    return both[["id", "label"]], counted


def read_window_performance(client: Any, run_id: str, window: StoredWindow) -> Optional[dict[str, Any]]:
    """The window's newest performance record (highest revision), or ``None``."""
    folder = window.folder(LABELS)
    revisions = sorted(Path(e.path).name for e in _list(client, run_id, f"{folder}/{PERFORMANCE}")
                       if e.path.endswith(".json"))
    if revisions:
        return read_json_artifact(client, run_id, f"{folder}/{PERFORMANCE}/{revisions[-1]}")
    return read_json_artifact(client, run_id, f"{folder}/performance.json")
