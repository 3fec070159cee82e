"""``mlflow-monitor serve`` as a real subprocess on 127.0.0.1, a small registered sklearn
model with a logged reference, and helpers that read the monitoring run back."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import mlflow
import numpy as np
import pandas as pd
import requests
from helpers.servers import free_port

FEATURES = ["x", "y", "c"]


def train_and_register(name: str = "served", alias: str = "champion") -> tuple[str, str, Any]:
    """A LogisticRegression on (x, y, c-as-code) with a reference; version aliased ``alias``.
    Returns (name, version, model)."""
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    import mlflow_monitor

    rng = np.random.default_rng(0)
    n = 2000
    ref = pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(loc=5.0, size=n),
                        "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])})
    target = (ref["x"] + (ref["c"] == "a") > 0.5).astype(int)
    model = make_pipeline(ColumnTransformer([("c", OneHotEncoder(handle_unknown="ignore"), ["c"])],
                                            remainder="passthrough"), LogisticRegression())
    model.fit(ref, target)
    with mlflow.start_run() as run:
        mlflow_monitor.log_reference(ref)
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(ref, model.predict(ref)),
                                        pip_requirements=["scikit-learn"])  # no requirement inference (slow)
    client = mlflow.MlflowClient()
    mv = mlflow.register_model(info.model_uri, name)
    client.set_registered_model_alias(name, alias, mv.version)
    assert mv.run_id == run.info.run_id
    return name, str(mv.version), model


def traffic(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": rng.normal(size=n), "y": rng.normal(loc=5.0, size=n),
                         "c": rng.choice(["a", "b", "c"], n)})


def payload(frame: pd.DataFrame) -> dict:
    return {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}


class ServeProcess:
    """``mlflow-monitor serve`` in its own process group, bounded in time."""

    def __init__(self, workdir: Path, model_uri: str, tracking_uri: str, *, workers: int = 1,
                 window: str = "1s", extra: tuple[str, ...] = ()) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "serve.log"
        self.home = self.workdir / "monitor_home"
        self.cmd = [sys.executable, "-m", "mlflow_monitor.cli", "serve", model_uri, "--port", str(self.port),
                    "--workers", str(workers), "--window", window, *extra]
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_MONITOR_HOME": str(self.home),
                    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
        self.env.pop("MLFLOW_REGISTRY_URI", None)
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 120.0) -> "ServeProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.25)
        self.kill()
        raise TimeoutError(f"serve not ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def worker_pids(self) -> list[int]:
        """The uvicorn worker processes (children of the serve process)."""
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        pids = [int(p) for p in out.split()]
        # multiprocessing adds a resource tracker; workers are the ones running our app
        return [p for p in pids if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]

    def stop(self, timeout: float = 60.0) -> int:
        """SIGINT (Ctrl-C): workers close their windows, the parent merges them; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


def window_summaries(client: Any, run_id: str) -> list[dict]:
    """Every merged window's summary.json in the monitoring run."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for day in client.list_artifacts(run_id, "mlflow_monitor/prod/windows"):
            for window in client.list_artifacts(run_id, day.path):
                local = client.download_artifacts(run_id, f"{window.path}/summary.json", tmp)
                out.append(json.loads(Path(local).read_text()))
    return sorted(out, key=lambda s: s["start"])


def sampled_ids(client: Any, run_id: str, summaries: list[dict]) -> set[str]:
    """Prediction ids in the merged window samples (every row, while a window has fewer
    rows than the sample size and the retention keeps every slot)."""
    ids: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        for s in summaries:
            local = client.download_artifacts(run_id, s["sample_artifact"], tmp)
            ids |= set(pd.read_parquet(local)["__prediction_id"])
    return ids


def wait_for(predicate, timeout: float, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
