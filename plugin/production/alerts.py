"""Production alerts: checked on each merged window (and on each labelled window),
published on the event bus (:class:`mlflow_monitor.events.ProductionAlert`; the Slack
notifier renders them with a link to the monitoring run).

- ``drift``: the gate's drift engine says the window drifted (its calibrated per-column
  thresholds and drift share) against the version's reference, on a row sample of at
  least ``min_drift_rows`` rows (smaller windows drift by sampling noise alone: at 40
  rows the normalized Wasserstein distance of same-distribution data is ~0.15, above
  the 0.1 threshold);
- ``performance``: a ``prod/<metric>`` of labelled rows is worse than the version's own
  evaluation (the same metric on its source run) by more than ``performance_tolerance``
  (relative), with at least ``min_labelled_rows`` labels;
- ``latency``: p99 above ``latency_factor`` x the median p99 of the version's first
  ``latency_baseline_windows`` windows and at least ``latency_min_increase_ms`` above it;
- ``errors``: an error rate of at least ``error_rate`` and ``error_spike_factor`` x the
  median of the previous windows, with at least ``min_requests`` requests.

Deduplicated per model version, alert and window: an alert raised is recorded in the
monitoring run (``alerts/<day>/<window_id>/<alert>.json``) and never raised again for
that window, however often the window is re-merged (late partials, several closers).
A drift alert raised by the closer also gets an Evidently HTML report of the window
(``alerts/<day>/<window_id>/drift_report.html``, at most 20 per closer process).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any, Optional

from mlflow_monitor.events import ProductionAlert, publish
from mlflow_monitor.formatting import format_number
from mlflow_monitor.production.labels_metrics import HIGHER_IS_BETTER
from mlflow_monitor.redaction import redact
from mlflow_monitor.windows.stored import ALERTS, PROD_TAG, StoredWindow, parse_window_id

__all__ = ["ALERT_KINDS", "DEFAULT_SETTINGS", "EVALUATION_NAMES", "AlertSettings", "check_performance",
           "MAX_REPORTS_PER_PROCESS", "check_window", "drift_report", "evaluation_metrics", "raised_alerts",
           "safe_check_window", "window_alerts"]

_logger = logging.getLogger(__name__)

ALERT_KINDS = ("drift", "performance", "latency", "errors")
ALERT_FORMAT = "mlflow_monitor.prod_alert/1"
#: the version's own evaluation: metric names looked up on its source run, first found wins
EVALUATION_NAMES = {
    "accuracy": ("accuracy", "accuracy_score", "test_accuracy", "eval_accuracy", "val_accuracy"),
    "f1": ("f1", "f1_score", "test_f1", "eval_f1", "val_f1", "f1_score_binary"),
    "roc_auc": ("roc_auc", "roc_auc_score", "test_roc_auc", "eval_roc_auc", "val_roc_auc"),
    "mae": ("mae", "mean_absolute_error", "test_mae", "eval_mae", "val_mae"),
    "rmse": ("rmse", "root_mean_squared_error", "test_rmse", "eval_rmse", "val_rmse"),
}


@dataclasses.dataclass(frozen=True)
class AlertSettings:
    """Alert thresholds (see the module docstring)."""

    min_drift_rows: int = 1000
    performance_tolerance: float = 0.10
    min_labelled_rows: int = 30
    latency_factor: float = 2.0
    latency_min_increase_ms: float = 5.0
    latency_baseline_windows: int = 5
    error_rate: float = 0.05
    error_spike_factor: float = 3.0
    min_requests: int = 20


DEFAULT_SETTINGS = AlertSettings()


def _model_of(run: Any) -> tuple[str, str]:
    name, _, version = str(run.data.tags.get(PROD_TAG, "")).rpartition("/")
    return name, version


def _alert_path(window: StoredWindow, kind: str) -> str:
    return f"{window.folder(ALERTS)}/{kind}.json"


def raised_alerts(client: Any, run_id: str, window: StoredWindow) -> set[str]:
    """The alerts already raised for ``window``."""
    try:
        entries = client.list_artifacts(run_id, window.folder(ALERTS))
    except Exception:
        return set()
    return {Path(e.path).name[:-5] for e in entries if e.path.endswith(".json")}


def _raise(client: Any, run: Any, window: StoredWindow, kind: str, message: str, *, metric: Optional[str],
           value: Optional[float], threshold: Optional[float], details: Optional[list[str]] = None,
           severity: str = "warning") -> Optional[ProductionAlert]:
    if kind in raised_alerts(client, run.info.run_id, window):
        return None
    name, version = _model_of(run)
    alert = ProductionAlert(model_name=name, version=version, alert=kind, window_id=window.window_id,
                            message=redact(message), run_id=run.info.run_id,
                            experiment_id=run.info.experiment_id, metric=metric, value=value,
                            threshold=threshold, severity=severity, details=list(details or []))
    record = {"format": ALERT_FORMAT, **dataclasses.asdict(alert), "window_end": window.end}
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_alert_") as tmp:
        path = Path(tmp) / f"{kind}.json"
        path.write_text(json.dumps(record, indent=1, allow_nan=True), encoding="utf-8")
        client.log_artifact(run.info.run_id, str(path), window.folder(ALERTS))  # recorded first: deduplicated
    _notifiers_on()
    publish(alert)
    return alert


_notifiers_started = False


def _notifiers_on() -> None:
    """Start the installed notifiers (Slack, from its env vars) once per process: the
    process that merges windows may be a serving parent that never started them."""
    global _notifiers_started
    if not _notifiers_started:
        _notifiers_started = True
        from mlflow_monitor.events import enable_notifiers

        enable_notifiers()


def _history(client: Any, run_id: str, key: str) -> dict[int, float]:
    """``{step: value}`` of a metric (the last logged value per step)."""
    out: dict[int, tuple[int, float]] = {}
    for m in client.get_metric_history(run_id, key):
        seen = out.get(m.step)
        if seen is None or m.timestamp >= seen[0]:
            out[m.step] = (m.timestamp, m.value)
    return {step: v for step, (_, v) in out.items()}


def check_window(client: Any, run_id: str, summary: dict[str, Any],
                 settings: AlertSettings = DEFAULT_SETTINGS) -> list[ProductionAlert]:
    """The drift, latency and error alerts of a merged window's ``summary`` (the closer's
    ``summary.json``), each raised (recorded and published) once per window."""
    window = parse_window_id(str(summary.get("window_id", "")))
    if window is None:
        return []
    run = client.get_run(run_id)
    metrics = summary.get("metrics") or {}
    raised: list[Optional[ProductionAlert]] = []
    drift = summary.get("drift")
    if drift and drift.get("dataset_drift") and (drift.get("current_rows") or 0) >= settings.min_drift_rows:
        cols = sorted((c for c in drift.get("columns", []) if c.get("drifted")), key=lambda c: str(c["column"]))
        details = [f"{c['column']}: {c.get('stattest')} score {format_number(c.get('score'))} "
                   f"(threshold {format_number(c.get('threshold'))})" for c in cols[:10]]
        raised.append(_raise(client, run, window, "drift",
                             f"{drift.get('n_drifted')} of {drift.get('n_columns')} columns drifted "
                             f"(drift share {format_number(drift.get('drift_share'))}) in window "
                             f"{window.window_id}", metric="prod/drift_share", value=drift.get("drift_share"),
                             threshold=None, details=details, severity="critical"))
    p99 = metrics.get("prod/latency_p99_ms")
    if p99 is not None:
        history = _history(client, run_id, "prod/latency_p99_ms")
        first = [history[s] for s in sorted(history)[:settings.latency_baseline_windows]]
        if len(first) >= settings.latency_baseline_windows and window.index > sorted(history)[len(first) - 1]:
            base = statistics.median(first)
            limit = max(base * settings.latency_factor, base + settings.latency_min_increase_ms)
            if p99 > limit:
                raised.append(_raise(client, run, window, "latency",
                                     f"p99 latency {format_number(p99)} ms is above {format_number(limit)} ms "
                                     f"(the version's first {len(first)} windows: median p99 "
                                     f"{format_number(base)} ms)", metric="prod/latency_p99_ms", value=p99,
                                     threshold=limit))
    requests = metrics.get("prod/requests") or 0.0
    rate = metrics.get("prod/error_rate")
    if rate is not None and requests >= settings.min_requests:
        history = _history(client, run_id, "prod/error_rate")
        before = [history[s] for s in sorted(history) if s < window.index][-50:]
        base = statistics.median(before) if before else 0.0
        limit = max(settings.error_rate, base * settings.error_spike_factor)
        if rate >= limit:
            raised.append(_raise(client, run, window, "errors",
                                 f"error rate {format_number(rate)} ({int(metrics.get('prod/errors', 0))} of "
                                 f"{int(requests)} requests) is at least {format_number(limit)} (previous "
                                 f"windows: median {format_number(base)})", metric="prod/error_rate", value=rate,
                                 threshold=limit))
    return [a for a in raised if a is not None]


def evaluation_metrics(client: Any, run: Any) -> dict[str, float]:
    """The version's own evaluation: ``{accuracy|f1|roc_auc|mae|rmse: value}`` from the
    metrics of its source run (names in :data:`EVALUATION_NAMES`)."""
    name, version = _model_of(run)
    mv = client.get_model_version(name, version)
    if not mv.run_id:
        return {}
    logged = client.get_run(mv.run_id).data.metrics
    out = {}
    for metric, names in EVALUATION_NAMES.items():
        found = next((logged[n] for n in names if n in logged), None)
        if found is not None:
            out[metric] = float(found)
    return out


def check_performance(client: Any, run_id: str, window: StoredWindow, metrics: dict[str, float], labelled: int,
                      settings: AlertSettings = DEFAULT_SETTINGS) -> list[ProductionAlert]:
    """The ``performance`` alert of a labelled window (raised once per window)."""
    if labelled < settings.min_labelled_rows or not metrics:
        return []
    run = client.get_run(run_id)
    own = evaluation_metrics(client, run)
    worse = []
    for metric, value in sorted(metrics.items()):
        if metric not in own:
            continue
        tol = settings.performance_tolerance * abs(own[metric])
        higher = HIGHER_IS_BETTER.get(metric, True)
        limit = own[metric] - tol if higher else own[metric] + tol
        if (value < limit) if higher else (value > limit):
            worse.append((metric, value, own[metric], limit))
    if not worse:
        return []
    metric, value, base, limit = worse[0]
    details = [f"{m}: {format_number(v)} in production vs {format_number(b)} in evaluation" for m, v, b, _ in worse]
    alert = _raise(client, run, window, "performance",
                   f"prod/{metric} {format_number(value)} on {labelled} labelled rows is worse than the "
                   f"version's evaluation ({format_number(base)}, limit {format_number(limit)})",
                   metric=f"prod/{metric}", value=value, threshold=limit, details=details)
    return [alert] if alert is not None else []


def window_alerts(client: Any, run_id: str, window: StoredWindow) -> list[dict[str, Any]]:
    """The alert records raised for ``window`` (for ``prod status``)."""
    from mlflow_monitor.windows.stored import read_json_artifact

    out = []
    for kind in sorted(raised_alerts(client, run_id, window)):
        record = read_json_artifact(client, run_id, _alert_path(window, kind))
        if record is not None:
            out.append(record)
    return out


MAX_REPORTS_PER_PROCESS = 20  # Evidently HTML reports of drift-alerting windows, per closer process
_reports_written = 0


def drift_report(client: Any, run_id: str, window: StoredWindow, current: Any, reference: Any) -> Optional[str]:
    """An Evidently drift report (HTML) of a drift-alerting window's sample against the
    reference, logged as ``alerts/<day>/<window_id>/drift_report.html``; at most
    :data:`MAX_REPORTS_PER_PROCESS` per process. Returns the artifact path."""
    global _reports_written
    if _reports_written >= MAX_REPORTS_PER_PROCESS or reference is None or current is None or current.empty:
        return None
    from mlflow_monitor.gate.reports import build_report
    from mlflow_monitor.recipes import load_recipe

    recipe = load_recipe({"task": "drift", "current": {"production": {}}, "presets": ["DataDriftPreset"]})
    cols = [c for c in current.columns if c in set(map(str, reference.frame.columns))]
    report = build_report(reference.frame[cols], current[cols], recipe=recipe, sample_size=5000,
                          title=f"window {window.window_id}", evidence="production traffic captured by the monitor")
    _reports_written += 1
    with tempfile.TemporaryDirectory(prefix="mlflow_monitor_alert_") as tmp:
        path = Path(tmp) / "drift_report.html"
        path.write_text(report.html, encoding="utf-8")
        client.log_artifact(run_id, str(path), window.folder(ALERTS))
    return f"{window.folder(ALERTS)}/drift_report.html"


def safe_check_window(client: Any, run_id: str, summary: dict[str, Any], *, current: Any = None,
                      reference: Any = None) -> None:
    """:func:`check_window` for the closer: never raises (a failed check is logged).
    With the window's sample inputs ``current`` and the version's ``reference``, a drift
    alert also gets an Evidently HTML report (:func:`drift_report`)."""
    try:
        raised = check_window(client, run_id, summary)
        window = parse_window_id(str(summary.get("window_id", "")))
        if window is not None and any(a.alert == "drift" for a in raised):
            drift_report(client, run_id, window, current, reference)
    except Exception as exc:
        _logger.warning("mlflow-monitor: alert check of window %s failed (%s)", summary.get("window_id"),
                        redact(f"{type(exc).__name__}: {exc}")[:300])

