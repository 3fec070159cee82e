"""Links into the MLflow UI for Slack messages."""

from __future__ import annotations

import os
from typing import Optional
from urllib.parse import quote

from mlflow_monitor.redaction import strip_credentials

ENV_UI_URL = "MLFLOW_UI_URL"


class MlflowUiLinks:
    """Builds MLflow UI page URLs (``#/models/...``, ``#/experiments/.../runs/...``)."""

    def __init__(self, base_url: Optional[str]) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None

    @classmethod
    def from_env(cls) -> "MlflowUiLinks":
        """``$MLFLOW_UI_URL``, else the tracking URI when it is http(s); else no links."""
        url = os.environ.get(ENV_UI_URL)
        if not url:
            try:
                import mlflow

                uri = mlflow.get_tracking_uri()
            except Exception:
                uri = ""
            url = uri if uri.startswith(("http://", "https://")) else None
        return cls(strip_credentials(url) if url else None)

    def model_version(self, name: str, version: str) -> Optional[str]:
        """Model version page, or None without a base URL."""
        if not self.base_url:
            return None
        return f"{self.base_url}/#/models/{quote(str(name), safe='')}/versions/{quote(str(version), safe='')}"

    def run(self, run_id: str, experiment_id: Optional[str] = None) -> Optional[str]:
        """Run page; MLflow's UI also resolves ``#/runs/<id>`` when the experiment is unknown."""
        if not self.base_url or not run_id:
            return None
        rid = quote(str(run_id), safe="")
        if experiment_id:
            return f"{self.base_url}/#/experiments/{quote(str(experiment_id), safe='')}/runs/{rid}"
        return f"{self.base_url}/#/runs/{rid}"

