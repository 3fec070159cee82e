"""Shared pieces of the production-monitoring tests: a reference frame, a registered
version with a logged reference, an injected clock."""

from __future__ import annotations

import numpy as np
import pandas as pd


def reference_frame(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "y": rng.normal(loc=5.0, size=n),
        "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
    })


def register_version(name: str = "prod-model", with_reference: bool = True) -> tuple[str, str, str]:
    """A registered model version whose source run logged a reference: (name, version, run_id)."""
    import mlflow

    import mlflow_monitor

    with mlflow.start_run() as run:
        if with_reference:
            mlflow_monitor.log_reference(reference_frame())
        mlflow.log_param("kind", "test")
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except Exception:
        pass
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    return name, str(mv.version), run.info.run_id


def forge_window_rows(client, run_id: str, window, features: pd.DataFrame) -> pd.DataFrame:
    """What an editor of a monitoring run's experiment can do: replace ``window``'s merged
    ``rows.parquet`` with rows drawn from ``features`` under the captured prediction ids
    (the merged rows come first when a window is read). Returns the forged rows."""
    import tempfile
    from pathlib import Path

    from mlflow_monitor.windows.stored import WINDOW_ROWS, WINDOWS, read_window_rows

    ids = read_window_rows(client, run_id, window)["__prediction_id"]
    fake = features.sample(len(ids), replace=True, random_state=0).reset_index(drop=True)
    fake.insert(0, "__prediction_id", ids.to_numpy())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / WINDOW_ROWS
        fake.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), window.folder(WINDOWS))
    return fake


class FakeClock:
    """An injected clock (seconds since the epoch) the test moves by hand."""

    def __init__(self, start: float) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now
