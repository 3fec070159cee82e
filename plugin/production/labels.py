"""``log_labels``: ground truth that arrives after the prediction, joined to its window.

A label names its prediction by id. :func:`log_labels` finds the window each id was
captured in (the window's stored row samples, newest window first, back to
``horizon``), stores the labels of each window as a batch of its own
(``labels/<day>/<window_id>/batches/<UTC stamp>-<random>.parquet``, never overwritten;
for an id labelled twice the later batch wins), then scores the window on every batch
stored so far and logs ``prod/<metric>`` at the window's step, revision ``r`` (batches
seen - 1) at ``timestamp = end + r`` ms, only the metrics whose value changed.

Two concurrent calls on one window lose nothing: each writes its batch before it reads
the batches back, so the call that reads last sees both batches, scores the higher
revision, and its points carry the later timestamp: the step's newest point (what
MLflow shows as the latest value) is the score on all labels, whichever call logged
last. ``performance/<revision>.json`` holds each revision. Labels whose id is in no
window are kept too (``labels/unmatched/``), never dropped silently.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import pandas as pd

from mlflow_monitor.production.labels_metrics import infer_task, score_window
from mlflow_monitor.production.model_uri import resolve_model_version
from mlflow_monitor.windows.sample import ID_COLUMN
from mlflow_monitor.windows.signing import EvidenceKey, evidence_key, log_signed_artifact
from mlflow_monitor.windows.granularity import parse_duration
from mlflow_monitor.windows.stored import (LABEL_BATCHES, LABELS, PERFORMANCE, StoredWindow, find_monitoring_run,
                                           list_windows, prediction_columns, read_json_artifact, read_window_labels,
                                           read_window_performance, read_window_rows)

__all__ = ["DEFAULT_HORIZON", "LABEL_COLUMN", "LabelReport", "log_labels", "window_labels"]

_logger = logging.getLogger(__name__)

DEFAULT_HORIZON = "14d"
LABEL_COLUMN = "__label"
PERFORMANCE_FORMAT = "mlflow_monitor.prod_performance/1"


@dataclasses.dataclass
class LabelReport:
    """What :func:`log_labels` did: ids joined, ids in no window, windows re-scored."""

    run_id: str
    matched: int
    unmatched: list[str]
    windows: dict[str, dict[str, float]]  # window_id -> the window's metrics now
    task: str


def _labels_frame(labels: Any, id_column: str, label_column: str) -> pd.DataFrame:
    if isinstance(labels, pd.DataFrame):
        missing = [c for c in (id_column, label_column) if c not in labels.columns]
        if missing:
            raise ValueError(f"labels DataFrame must have columns {id_column!r} and {label_column!r}; "
                             f"missing {missing}, has {list(map(str, labels.columns))[:20]}")
        frame = pd.DataFrame({"id": labels[id_column].to_numpy(), "label": labels[label_column].to_numpy()})
    elif isinstance(labels, Mapping):
        frame = pd.DataFrame({"id": list(labels.keys()), "label": list(labels.values())})
    else:
        raise TypeError("labels must be a mapping prediction_id -> label or a DataFrame with "
                        f"{id_column!r} and {label_column!r} columns; got {type(labels).__name__}")
    if frame.empty:
        raise ValueError("log_labels got no labels")
    if frame["id"].isna().any():
        raise ValueError(f"labels has {int(frame['id'].isna().sum())} missing prediction id(s)")
    frame["id"] = frame["id"].map(str)
    if frame["label"].isna().any():
        bad = frame.loc[frame["label"].isna(), "id"].head(5).tolist()
        raise ValueError(f"labels has {int(frame['label'].isna().sum())} missing label value(s), e.g. for ids {bad}")
    dups = frame["id"][frame["id"].duplicated()].unique().tolist()
    if dups:
        raise ValueError(f"labels names prediction ids more than once: {dups[:5]}")
    frame["label"] = frame["label"].infer_objects() if frame["label"].dtype == object else frame["label"]
    return frame


def log_labels(model_uri: str, labels: Union[Mapping[str, Any], pd.DataFrame], *,
               horizon: Union[str, int] = DEFAULT_HORIZON, task: Optional[str] = None,
               id_column: str = "prediction_id", label_column: str = "label", client: Any = None,
               now: Optional[float] = None) -> LabelReport:
    """Join ``labels`` (``{prediction_id: label}`` or a DataFrame with ``id_column`` and
    ``label_column``) to the windows of the version ``model_uri`` names, up to
    ``horizon`` back (default 14 days), and log each touched window's performance.

    ``task``: ``classification`` or ``regression`` (default: the version's reference's
    task, else from the labels). Bad input raises ``ValueError``/``TypeError`` before
    anything is written.

    With the evidence key set (``MLFLOW_MONITOR_EVIDENCE_KEY``), each label batch is
    signed: the gate counts only signed labels (``mlflow_monitor.windows.signing``).
    """
    import mlflow

    frame = _labels_frame(labels, id_column, label_column)
    key = evidence_key()  # a key set but unusable raises here, before anything is written
    horizon_s = parse_duration(horizon, what="label horizon")
    if task is not None and task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    client = client or mlflow.MlflowClient()
    name, version = resolve_model_version(model_uri, client)
    run_id = find_monitoring_run(client, name, version)
    if run_id is None:
        raise ValueError(f"model '{name}' version {version} has no monitoring run: no production traffic was "
                         "captured for it (mlflow-monitor serve, log_predictions or the pyfunc wrapper)")
    task = task or _reference_task(client, name, version) or infer_task(frame["label"])
    now = time.time() if now is None else now
    wanted = dict(zip(frame["id"], frame["label"]))
    touched: dict[StoredWindow, pd.DataFrame] = {}
    for window in list_windows(client, run_id, since=now - horizon_s, until=now + 1):
        if not wanted:
            break
        rows = read_window_rows(client, run_id, window, key=key)  # with the key: ids of signed rows only
        hit = [i for i in rows[ID_COLUMN].tolist() if i in wanted] if len(rows) else []
        if hit:
            touched[window] = pd.DataFrame({"id": hit, "label": [wanted.pop(i) for i in hit]})
    report = LabelReport(run_id, len(frame) - len(wanted), sorted(wanted), {}, task)
    for window, new in sorted(touched.items()):
        report.windows[window.window_id] = _update_window(client, run_id, window, new, task, key)
    if wanted:
        _keep_unmatched(client, run_id, frame[frame["id"].isin(wanted)])
        _logger.warning("mlflow-monitor: %d of %d labels of '%s' version %s match no captured prediction in the "
                        "last %s; kept in %s/unmatched", len(wanted), len(frame), name, version, horizon, LABELS)
    return report


def _reference_task(client: Any, name: str, version: str) -> Optional[str]:
    from mlflow_monitor.reference import ReferenceNotFoundError, load_reference

    mv = client.get_model_version(name, version)
    if not mv.run_id:
        return None
    try:
        task = load_reference(mv.run_id, client).task
    except (ReferenceNotFoundError, OSError, ValueError):
        return None
    return task if task in ("classification", "regression") else None


def window_labels(client: Any, run_id: str, window: StoredWindow) -> pd.DataFrame:
    """The labels joined to ``window`` so far (columns ``id``, ``label``)."""
    return read_window_labels(client, run_id, window)[0]


def _update_window(client: Any, run_id: str, window: StoredWindow, new: pd.DataFrame, task: str,
                   key: Optional[EvidenceKey] = None) -> dict[str, float]:
    """Store this call's labels of ``window`` as a batch of their own, then score the
    window on every batch stored so far (see the module docstring for why this loses no
    concurrent call's labels)."""
    from mlflow.entities import Metric

    from mlflow_monitor.production.closer import same_value

    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_labels_") as tmp:
        path = Path(tmp) / f"{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        new[["id", "label"]].to_parquet(path, index=False)
        log_signed_artifact(client, run_id, str(path), f"{window.folder(LABELS)}/{LABEL_BATCHES}", key)
    previous = read_window_performance(client, run_id, window) or {}
    both, batches = read_window_labels(client, run_id, window)  # ours included: read after our write
    # a window labelled before batches existed counts its old revisions first (its
    # labels.parquet is then the first batch), so a new revision is never older
    legacy = read_json_artifact(client, run_id, f"{window.folder(LABELS)}/performance.json") or {}
    base = legacy.get("revision") if isinstance(legacy.get("revision"), int) else 0
    revision = base + max(batches - 1, 0)
    rows = read_window_rows(client, run_id, window, key=key)
    joined = rows.merge(both.rename(columns={"id": ID_COLUMN, "label": LABEL_COLUMN}), on=ID_COLUMN, how="inner")
    preds = prediction_columns(rows)
    metrics = score_window(joined, preds, task, LABEL_COLUMN)
    logged = {f"prod/{k}": v for k, v in metrics.items()}
    logged["prod/labelled_rows"] = float(len(joined))
    # unchanged metrics are not logged again, but only against the revision just before
    # ours (its points are in: its record is written after them); otherwise everything is
    # logged (a concurrent call of the same revision logs identical points)
    before = previous.get("logged") if isinstance(previous.get("logged"), dict) else {}
    if previous.get("revision") != revision - 1:
        before = {}
    ts_ms = window.end * 1000 + revision  # the newest revision is the latest point of the step
    changed = [Metric(k, v, ts_ms, window.index) for k, v in sorted(logged.items()) if not same_value(before.get(k), v)]
    if changed:
        client.log_batch(run_id, metrics=changed)
    summary = {"format": PERFORMANCE_FORMAT, "window_id": window.window_id, "start": window.start,
               "end": window.end, "task": task, "labelled_rows": len(joined), "metrics": metrics,
               "logged": logged, "revision": revision, "label_batches": batches, "updated_at": time.time()}
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_labels_") as tmp:
        path = Path(tmp) / f"{revision:06d}.json"
        path.write_text(json.dumps(summary, indent=1, allow_nan=True), encoding="utf-8")
        client.log_artifact(run_id, str(path), f"{window.folder(LABELS)}/{PERFORMANCE}")
    _alert_on_performance(client, run_id, window, metrics, len(joined))
    return logged


def _keep_unmatched(client: Any, run_id: str, frame: pd.DataFrame) -> None:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_labels_") as tmp:
        path = Path(tmp) / f"{stamp}-{uuid.uuid4().hex[:8]}.parquet"
        frame.assign(received_at=time.time()).to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), f"{LABELS}/unmatched")


def _alert_on_performance(client: Any, run_id: str, window: StoredWindow, metrics: dict[str, float],
                          labelled: int) -> None:
    from mlflow_monitor.production.alerts import check_performance

    try:
        check_performance(client, run_id, window, metrics, labelled)
    except Exception as exc:  # an alert that cannot be raised never loses the labels
        _logger.warning("mlflow-monitor: performance alert check of window %s failed: %s", window.window_id,
                        type(exc).__name__)
