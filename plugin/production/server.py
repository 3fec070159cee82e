"""The app ``mlflow-monitor serve`` runs in each uvicorn worker: MLflow's scoring app for
the model version, with :class:`~mlflow_monitor.production.middleware.CaptureMiddleware`
around it. Configuration comes from the serving parent in ``MLFLOW_MONITOR_SERVE_*``
environment variables (:func:`serve_env`), so every worker builds the same app."""

from __future__ import annotations

import os
from typing import Any, Optional

from mlflow_monitor import mlflow_compat
from mlflow_monitor.production.capture import Capture
from mlflow_monitor.production.capturing_model import CapturingModel
from mlflow_monitor.production.middleware import CaptureMiddleware

__all__ = ["ENV_PREFIX", "build_app", "create_app", "serve_env"]

ENV_PREFIX = "MLFLOW_MONITOR_SERVE_"
_KEYS = ("MODEL_PATH", "MODEL_NAME", "VERSION", "WINDOW", "SAMPLE", "RUN_ID", "STATE_DIR", "TRACKING_URI")


def serve_env(*, model_path: str, model_name: str, version: str, window: str, sample: float, run_id: str,
              state_dir: str, tracking_uri: str) -> dict[str, str]:
    """The environment a worker reads in :func:`create_app`."""
    values = (model_path, model_name, version, window, repr(float(sample)), run_id, state_dir, tracking_uri)
    return {ENV_PREFIX + k: str(v) for k, v in zip(_KEYS, values)}


def build_app(model: Any, capture: Capture) -> Any:
    """MLflow's scoring app for ``model`` (a loaded pyfunc), capturing into ``capture``."""
    return CaptureMiddleware(mlflow_compat.scoring_app(CapturingModel(model)), capture)


def create_app(environ: Optional[dict[str, str]] = None) -> Any:
    """uvicorn factory: load the model from the parent's download and capture as one worker."""
    import mlflow

    env = os.environ if environ is None else environ
    cfg = {k: env[ENV_PREFIX + k] for k in _KEYS}
    model = mlflow.pyfunc.load_model(cfg["MODEL_PATH"])
    capture = Capture(cfg["MODEL_NAME"], cfg["VERSION"], window=cfg["WINDOW"], sample=float(cfg["SAMPLE"]),
                      tracking_uri=cfg["TRACKING_URI"], state_dir=cfg["STATE_DIR"], run_id=cfg["RUN_ID"],
                      close_windows=False)
    return build_app(model, capture)
