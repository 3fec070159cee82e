"""The app ``mlflow-monitor serve`` runs in each uvicorn worker: MLflow's scoring app for
the model version, with :class:`~mlflow_monitor.production.middleware.CaptureMiddleware`
around it. Configuration comes from the serving parent in ``MLFLOW_MONITOR_SERVE_*``
environment variables (:func:`serve_env`), so every worker builds the same app.

Each worker captures through a :class:`~mlflow_monitor.production.forwarder.CaptureForwarder`
into its own capture process (``capture_process.py``), which runs the
:class:`~mlflow_monitor.production.capture.Capture` (:func:`capture_from_env`); with
``MLFLOW_MONITOR_SERVE_CAPTURE=thread`` the Capture runs in the worker instead."""

from __future__ import annotations

import os
from typing import Any, Optional

from mlflow_monitor import mlflow_compat
from mlflow_monitor.production.capture import Capture
from mlflow_monitor.production.capturing_model import CapturingModel
from mlflow_monitor.production.middleware import CaptureMiddleware

__all__ = ["CAPTURE_MODE_ENV", "ENV_PREFIX", "build_app", "capture_from_env", "create_app", "serve_env"]

ENV_PREFIX = "MLFLOW_MONITOR_SERVE_"
CAPTURE_MODE_ENV = ENV_PREFIX + "CAPTURE"  # "process" (default) or "thread"
_KEYS = ("MODEL_PATH", "MODEL_NAME", "VERSION", "WINDOW", "SAMPLE", "RUN_ID", "STATE_DIR", "TRACKING_URI")


def serve_env(*, model_path: str, model_name: str, version: str, window: str, sample: float, run_id: str,
              state_dir: str, tracking_uri: str) -> dict[str, str]:
    """The environment a worker reads in :func:`create_app`."""
    values = (model_path, model_name, version, window, repr(float(sample)), run_id, state_dir, tracking_uri)
    return {ENV_PREFIX + k: str(v) for k, v in zip(_KEYS, values)}


def capture_from_env(env: Any) -> tuple[Capture, str]:
    """The worker's :class:`Capture` as the environment configures it, and the model's path."""
    cfg = {k: env[ENV_PREFIX + k] for k in _KEYS}
    capture = Capture(cfg["MODEL_NAME"], cfg["VERSION"], window=cfg["WINDOW"], sample=float(cfg["SAMPLE"]),
                      tracking_uri=cfg["TRACKING_URI"], state_dir=cfg["STATE_DIR"], run_id=cfg["RUN_ID"],
                      close_windows=False)
    return capture, cfg["MODEL_PATH"]


def build_app(model: Any, capture: Any) -> Any:
    """MLflow's scoring app for ``model`` (a loaded pyfunc), capturing into ``capture`` (a
    :class:`Capture` or a :class:`~mlflow_monitor.production.forwarder.CaptureForwarder`)."""
    return CaptureMiddleware(mlflow_compat.scoring_app(CapturingModel(model)), capture)


def create_app(environ: Optional[dict[str, str]] = None) -> Any:
    """uvicorn factory: load the model from the parent's download and capture as one worker."""
    import mlflow

    from mlflow_monitor.production.forwarder import CaptureForwarder

    env = os.environ if environ is None else environ
    mode = env.get(CAPTURE_MODE_ENV, "process")
    if mode not in ("process", "thread"):
        raise ValueError(f"{CAPTURE_MODE_ENV} must be 'process' or 'thread', got {mode!r}")
    model = mlflow.pyfunc.load_model(env[ENV_PREFIX + "MODEL_PATH"])
    if mode == "thread":
        capture: Any = capture_from_env(env)[0]
    else:
        capture = CaptureForwarder()
    return build_app(model, capture)
