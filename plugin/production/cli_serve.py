"""``mlflow-monitor serve MODEL_URI``: MLflow's scoring server with production capture.

The parent process resolves the URI to a version, downloads the model once, finds or
creates the version's monitoring run, runs the window closer (merging every worker's
partials) and starts uvicorn with ``--workers`` worker processes (one included: the
closer never shares a worker's GIL), each running
:func:`mlflow_monitor.production.server.create_app`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

__all__ = ["serve"]

# the delivery thread's MLflow calls: no long client-side retries (a down tracking server
# makes partials wait on disk instead), unless the operator set these
_DELIVERY_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def _granularity(ctx: click.Context, param: click.Parameter, value: str) -> str:
    from mlflow_monitor.windows import parse_granularity

    try:
        parse_granularity(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _fraction(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise click.BadParameter(f"must be a fraction in (0, 1], got {value!r}")
    return value


@click.command("serve")
@click.argument("model_uri")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256), help="uvicorn worker processes.")
@click.option("--window", default="5m", show_default=True, callback=_granularity,
              help="Window granularity: 1s .. 1d (e.g. 1s, 5m, 1h, 1d).")
@click.option("--sample", default=1.0, show_default=True, type=float, callback=_fraction,
              help="Fraction of rows (by prediction id) whose values are kept.")
@click.option("--experiment-id", default=None, help="Experiment of the monitoring run (default: the model's).")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help="Where closed windows wait for delivery (default $MLFLOW_MONITOR_HOME/production).")
@click.option("--grace", "grace_s", default=None, type=click.FloatRange(0.0), help="Seconds after a window's "
              "end before its partials are merged (default: half the window, 2 s .. 60 s).")
def serve(model_uri: str, host: str, port: int, workers: int, window: str, sample: float,
          experiment_id: str | None, state_dir: str | None, grace_s: float | None) -> None:
    """Serve MODEL_URI (models:/NAME/VERSION or models:/NAME@ALIAS) like `mlflow models
    serve`, capturing requests and predictions into windows of the version's monitoring run."""
    import mlflow

    from mlflow_monitor.production.closer import CloserThread, WindowCloser
    from mlflow_monitor.production.model_uri import resolve_model_version
    from mlflow_monitor.production.monitoring_run import monitoring_run_id
    from mlflow_monitor.production.server import CAPTURE_MODE_ENV, serve_env
    from mlflow_monitor.production.window_spool import default_state_dir, safe_name
    from mlflow_monitor.redaction import redact
    from mlflow_monitor.windows import parse_granularity

    from mlflow_monitor.windows.signing import EvidenceKeyError, evidence_key

    try:
        evidence_key()  # the workers sign what they capture with it: a bad key stops here, before serving
    except EvidenceKeyError as exc:
        raise click.ClickException(str(exc)) from None
    mode = os.environ.get(CAPTURE_MODE_ENV, "process")
    if mode not in ("process", "thread"):
        raise click.ClickException(f"{CAPTURE_MODE_ENV} must be 'process' (the default) or 'thread', got {mode!r}")
    client = mlflow.MlflowClient()
    try:
        name, version = resolve_model_version(model_uri, client)
    except Exception as exc:
        raise click.ClickException(redact(f"cannot resolve {model_uri!r}: {exc}")) from None
    root = Path(state_dir) if state_dir else default_state_dir()
    models = root / "models" / safe_name(name) / safe_name(version)
    try:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}",
                                                    dst_path=str(_fresh(models)))
        run_id = monitoring_run_id(client, name, version, experiment_id)
    except Exception as exc:
        raise click.ClickException(redact(f"cannot prepare model '{name}' version {version}: {exc}")) from None
    for key, value in _DELIVERY_HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    os.environ.update(serve_env(model_path=local, model_name=name, version=version, window=window, sample=sample,
                                run_id=run_id, state_dir=str(root), tracking_uri=mlflow.get_tracking_uri()))
    closer = WindowCloser(client, lambda: run_id, name, version, granularity_s=parse_granularity(window),
                          grace_s=grace_s)
    thread = CloserThread(closer).start()
    click.echo(f"mlflow-monitor: serving '{name}' version {version} on http://{host}:{port} "
               f"({workers} worker(s), {window} windows); monitoring run {run_id}", err=True)
    try:
        _run_workers(host, port, workers)
    finally:
        thread.stop(timeout_s=10.0, final_pass=True)
    sys.exit(0)


def _run_workers(host: str, port: int, workers: int) -> None:
    """uvicorn's multiprocess supervisor, for one worker too (``uvicorn.run`` would serve a
    single worker in this process): the window closer's thread here then never shares a
    worker's GIL, so its merges and MLflow calls cannot stall a request. Returns when
    the supervisor stops (SIGINT/SIGTERM), after its workers have drained."""
    import inspect

    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("mlflow_monitor.production.server:create_app", factory=True, host=host, port=port,
                            workers=workers, log_level="warning")
    sock = config.bind_socket()
    kwargs = {}
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.30 names the worker's entry
        kwargs["target"] = uvicorn.Server(config=config).run
    try:
        Multiprocess(config, sockets=[sock], **kwargs).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def _fresh(folder: Path) -> Path:
    """An empty download folder (a previous download of the same version is replaced)."""
    import shutil

    from mlflow_monitor.paths import private_dir

    if folder.exists():
        shutil.rmtree(folder)
    return private_dir(folder)
