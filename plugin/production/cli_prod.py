"""``mlflow-monitor prod status MODEL`` and ``mlflow-monitor prod backfill MODEL_URI FILE``.

``status``: the version's monitoring run, its last windows (traffic, errors, p99,
drift, performance), the alerts raised on them, and the lag (how long ago the newest
merged window ended). ``backfill``: windows from a batch log (CSV or Parquet of scored
rows with a timestamp column), through :func:`log_predictions`.
"""

from __future__ import annotations

import time
from typing import Any, Optional

import click

__all__ = ["prod"]


@click.group()
def prod() -> None:
    """Production monitoring: status of a served version, backfill from batch logs."""


def _version_of(model: str, client: Any) -> tuple[str, str]:
    from mlflow_monitor.production.model_uri import resolve_model_version

    if not model.startswith("models:/"):  # a bare name: the newest version
        versions = client.search_model_versions(f"name = '{model.replace(chr(39), chr(92) + chr(39))}'")
        if not versions:
            raise click.ClickException(f"no registered model named {model!r}")
        return model, str(max(int(v.version) for v in versions))
    return resolve_model_version(model, client)


def _fmt(value: Optional[float], digits: str = "{:.4g}") -> str:
    return "-" if value is None else digits.format(value)


@prod.command("status")
@click.argument("model")
@click.option("--windows", "count", default=10, show_default=True, type=click.IntRange(1, 500),
              help="How many of the newest windows to show.")
@click.option("--since", default="1d", show_default=True, help="How far back to look for windows (e.g. 6h, 7d).")
def status(model: str, count: int, since: str) -> None:
    """MODEL: a registered model name (its newest version), models:/NAME/VERSION or models:/NAME@ALIAS."""
    import os

    import mlflow

    from mlflow_monitor.production import alerts as alerts_mod
    from mlflow_monitor.production.labels import PERFORMANCE_FORMAT
    from mlflow_monitor.redaction import redact
    from mlflow_monitor.windows.granularity import parse_duration
    from mlflow_monitor.windows.stored import (WINDOWS, find_monitoring_run, list_windows, read_json_artifact,
                                               read_window_performance)

    try:
        seconds = parse_duration(since, what="--since")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per window, no bars
    client = mlflow.MlflowClient()
    try:
        name, version = _version_of(model, client)
        run_id = find_monitoring_run(client, name, version)
    except click.ClickException:
        raise
    except Exception as exc:
        raise click.ClickException(redact(f"cannot read model {model!r}: {exc}")) from None
    if run_id is None:
        raise click.ClickException(f"model '{name}' version {version} has no monitoring run (no traffic captured)")
    now = time.time()
    windows = list_windows(client, run_id, since=now - seconds, until=now + 1)[:count]
    click.echo(f"model '{name}' version {version}: monitoring run {run_id}")
    if not windows:
        click.echo(f"no merged window in the last {since}")
        return
    lag = now - windows[0].end
    click.echo(f"lag: newest merged window ended {lag:.0f} s ago ({windows[0].window_id})")
    click.echo(f"{'window':<22} {'requests':>8} {'rows':>8} {'errors':>6} {'p99 ms':>8} {'drift':>6} performance")
    open_alerts = []
    for w in windows:
        summary = read_json_artifact(client, run_id, f"{w.folder(WINDOWS)}/summary.json") or {}
        m = summary.get("metrics") or {}
        perf = read_window_performance(client, run_id, w) or {}
        scores = ", ".join(f"{k} {v:.4g}" for k, v in sorted((perf.get("metrics") or {}).items())) \
            if perf.get("format") == PERFORMANCE_FORMAT else ""
        click.echo(f"{w.window_id:<22} {_fmt(m.get('prod/requests'), '{:.0f}'):>8} {_fmt(m.get('prod/rows'), '{:.0f}'):>8} "
                   f"{_fmt(m.get('prod/errors'), '{:.0f}'):>6} {_fmt(m.get('prod/latency_p99_ms')):>8} "
                   f"{_fmt(m.get('prod/drift_share'), '{:.2f}'):>6} {scores}")
        open_alerts.extend(alerts_mod.window_alerts(client, run_id, w))
    click.echo(f"alerts ({len(open_alerts)}):" if open_alerts else "alerts: none")
    for a in open_alerts:
        click.echo(f"  [{a.get('alert')}] {a.get('window_id')}: {a.get('message')}")


@prod.command("backfill")
@click.argument("model_uri")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--timestamp-column", default="timestamp", show_default=True,
              help="Column of each row's scoring time (datetimes, ISO-8601 strings or epoch seconds).")
@click.option("--prediction-column", "prediction_columns", multiple=True, default=("prediction",),
              show_default=True, help="Prediction column(s); repeat for several.")
@click.option("--id-column", default=None, help="Column of prediction ids (default: generated).")
@click.option("--window", default="5m", show_default=True, help="Window granularity (1s .. 1d).")
def backfill(model_uri: str, path: str, timestamp_column: str, prediction_columns: tuple[str, ...],
             id_column: Optional[str], window: str) -> None:
    """Windows for MODEL_URI from a batch log PATH (.csv or .parquet), by each row's timestamp."""
    import pandas as pd

    from mlflow_monitor.production.batch import log_predictions
    from mlflow_monitor.redaction import redact

    frame = pd.read_parquet(path) if path.endswith((".parquet", ".pq")) else pd.read_csv(path)
    needed = [timestamp_column, *prediction_columns, *([id_column] if id_column else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise click.ClickException(f"{path}: missing column(s) {missing}; it has {list(map(str, frame.columns))[:30]}")
    inputs = frame.drop(columns=needed)
    try:
        ids = log_predictions(inputs, frame[list(prediction_columns)], model_uri=model_uri,
                              prediction_ids=frame[id_column].map(str).tolist() if id_column else None,
                              timestamps=frame[timestamp_column].tolist(), window=window)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(redact(str(exc))) from None
    starts = pd.to_datetime(pd.Series(frame[timestamp_column]), utc=True, errors="coerce") \
        if not pd.api.types.is_numeric_dtype(frame[timestamp_column]) else \
        pd.to_datetime(frame[timestamp_column], unit="s", utc=True)
    first, last = starts.min(), starts.max()
    click.echo(f"backfilled {len(ids)} rows of {model_uri} into {window} windows from "
               f"{first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC")


