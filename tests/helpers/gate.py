"""Shared builders for the gate tests (no tests here): real sklearn models on
breast_cancer, a logged reference, current data files and recipes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

FEATURES = ["mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness"]


def breast_cancer_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout) frames with FEATURES and ``target``; fixed split."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame[FEATURES + ["target"]].copy()
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(frame))
    return frame.iloc[idx[:400]].reset_index(drop=True), frame.iloc[idx[400:]].reset_index(drop=True)


def drifted(frame: pd.DataFrame, factor: float = 3.0) -> pd.DataFrame:
    """Every feature scaled: drift share 1.0, and the model's accuracy collapses."""
    out = frame.copy()
    for c in FEATURES:
        out[c] = out[c] * factor
    return out


def train_version(client, model_name: str, *, max_iter: int = 200, c_reg: float = 1.0,
                  features: Optional[list[str]] = None, log_reference: bool = True,
                  frame: Optional[pd.DataFrame] = None) -> str:
    """Train a logistic regression in a new run, log its reference and register it.

    Returns the new version number (str).
    """
    import mlflow
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    import mlflow_monitor

    train, _ = breast_cancer_frames()
    if frame is not None:
        train = frame
    feats = features or [c for c in train.columns if c != "target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, C=c_reg))
    model.fit(train[feats], train["target"])
    with mlflow.start_run() as run:
        if log_reference:
            mlflow_monitor.log_reference(train, target="target", task="classification")
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    try:
        client.get_registered_model(model_name)
    except Exception:
        client.create_registered_model(model_name)
    mv = client.create_model_version(model_name, info.model_uri, run.info.run_id,
                                     model_id=info.model_id)
    return str(mv.version)


def write_current(tmp_path: Path, frame: pd.DataFrame, name: str = "current.parquet") -> Path:
    path = Path(tmp_path) / name
    frame.to_parquet(path, index=False)
    return path


def recipe_yaml(current_path: Path | str, *, rules: Optional[list[str]] = None,
                on_error: str = "block", aliases: str = "[champion]",
                stages: str = "[Production]", new_versions: bool = False,
                sample_size: int = 200) -> str:
    rules = rules if rules is not None else ["drift_share < 0.3", "accuracy >= 0.8"]
    rule_lines = "\n".join(f"  - {r}" for r in rules)
    return textwrap.dedent(f"""\
        name: test-recipe
        task: classification
        columns:
          target: target
        current:
          path: "{current_path}"
        presets: [DataDriftPreset]
        rules:
        """) + rule_lines + "\n" + textwrap.dedent(f"""\
        triggers:
          aliases: {aliases}
          stages: {stages}
          new_versions: {str(new_versions).lower()}
        on_error: {on_error}
        report:
          sample_size: {sample_size}
        """)


def gated_client():
    """An MlflowClient whose registry is wrapped by ``monitor:`` (via enable_gating)."""
    import mlflow

    import mlflow_monitor

    mlflow_monitor.enable_gating()
    return mlflow.MlflowClient()


def reference_only_version(client, model_name: str, reference: Optional[pd.DataFrame] = None,
                           *, log_reference: bool = True) -> str:
    """A version whose run has a reference but whose source holds no model (fast; for
    cases that fail before the model is used, or that must fail to load it)."""
    import mlflow

    import mlflow_monitor

    train, _ = breast_cancer_frames()
    with mlflow.start_run() as run:
        if log_reference:
            mlflow_monitor.log_reference(reference if reference is not None else train,
                                         target="target", task="classification")
    try:
        client.get_registered_model(model_name)
    except Exception:
        client.create_registered_model(model_name)
    mv = client.create_model_version(model_name, f"runs:/{run.info.run_id}/no_model_here",
                                     run.info.run_id)
    return str(mv.version)


def overlapping_promotions(store_uri: str, threads: int = 4, name: str = "m", target: str = "alias:champion") -> int:
    """Run ``threads`` threads that each hold ``promotion_lock`` briefly; how many overlapped."""
    import threading
    import time

    from mlflow_monitor.gate.promotion_lock import promotion_lock

    inside, overlaps = [], []

    def promote() -> None:
        with promotion_lock(store_uri, name, target):
            if inside:
                overlaps.append(True)
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    workers = [threading.Thread(target=promote) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    return len(overlaps)
