"""Demo: the promotion gate blocks a version evaluated on drifted data.

Run on its own (embedded sqlite in the working folder)::

    python examples/demo_gate.py

or from ``examples/demo.py`` via :func:`run_gate_demo`. Steps:

1. train (or reuse) a small sklearn model whose run logged a reference;
2. register it as version 1, attach a recipe, promote it to ``@champion``: passes;
3. register version 2 whose evaluation data is drifted, promote it: blocked, reason printed;
4. print where to look in the MLflow UI.
"""

from __future__ import annotations

import textwrap
from typing import Any, Optional

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_monitor
from mlflow_monitor.gate import tags as T
from mlflow_monitor.gate.audit import audit_log_path
from mlflow_monitor.gate.data import log_current
from mlflow_monitor.reference import load_reference

MODEL_NAME = "demo-gate-classifier"


def run_gate_demo(tracking_uri: str, train_run_id: Optional[str] = None) -> None:
    """Register, promote (pass), register a drifted candidate, promote (blocked)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    mlflow_monitor.enable_gating()  # registry URI is now monitor:<tracking_uri>
    client = MlflowClient()

    if train_run_id is None:
        train_run_id = _train_with_reference()
    reference = load_reference(train_run_id)
    model = mlflow.sklearn.load_model(_model_uri_of_run(client, train_run_id))
    good, shifted = _current_frames(reference)

    log_current(good, context="evaluation", run_id=train_run_id)
    v1 = _register(client, _model_uri_of_run(client, train_run_id), train_run_id)
    client.set_registered_model_tag(MODEL_NAME, T.RECIPE, _recipe(reference))
    print(f"[gate demo] recipe set on '{MODEL_NAME}' (tag {T.RECIPE})")

    client.set_registered_model_alias(MODEL_NAME, "champion", v1)
    print(f"[gate demo] version {v1} -> @champion: PASSED "
          f"({client.get_model_version(MODEL_NAME, v1).tags[T.REPORT]})")

    v2_run = _relog(model, reference, shifted)
    v2 = _register(client, _model_uri_of_run(client, v2_run), v2_run)
    try:
        client.set_registered_model_alias(MODEL_NAME, "champion", v2)
        print(f"[gate demo] version {v2} -> @champion: unexpectedly PASSED")
    except MlflowException as exc:
        print(f"[gate demo] version {v2} -> @champion: BLOCKED\n{textwrap.indent(exc.message, '    ')}")
    holder = client.get_model_version_by_alias(MODEL_NAME, "champion").version
    print(f"[gate demo] @champion still points to version {holder}")
    _print_where_to_look(tracking_uri, client, v2)


def _train_with_reference() -> str:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.iloc[:, list(range(8)) + [-1]]
    features = [c for c in frame.columns if c != "target"]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    # fit inside the run: with autolog on (mlflow.sklearn.autolog among it), a fit outside any
    # run gets a run of its own -- a stray run next to the one the model is logged in
    with mlflow.start_run(run_name="gate-demo-train") as run:
        model.fit(frame[features], frame["target"])
        mlflow_monitor.log_reference(frame, target="target", task="classification")
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return run.info.run_id


def _model_uri_of_run(client: MlflowClient, run_id: str) -> str:
    run = client.get_run(run_id)
    models = client.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run_id}'", max_results=1)
    if not models:
        raise RuntimeError(f"run {run_id} logged no model; log one with mlflow.sklearn.log_model")
    return models[0].model_uri


def _current_frames(reference: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(good, drifted) current data: a seeded sample of the reference, and the same
    sample with every numeric feature scaled x3."""
    frame = reference.frame
    good = frame.sample(n=min(len(frame), 300), random_state=7).reset_index(drop=True)
    shifted = good.copy()
    skip = {reference.target, reference.prediction}
    for col in shifted.columns:
        if col not in skip and pd.api.types.is_numeric_dtype(shifted[col]):
            shifted[col] = shifted[col].astype(float) * 3.0 + np.float64(1.0)
    return good, shifted


def _recipe(reference: Any) -> str:
    rules = ["drift_share < 0.3"]
    target = reference.target
    if target and (reference.task or "classification") == "classification":
        rules.append("{metric: accuracy, max_drop_vs_champion: 0.05}")
    lines = ["name: demo-gate", f"task: {'classification' if target else 'drift'}"]
    if target:
        lines += ["columns:", f"  target: {target}"]
    lines += ["current:", "  dataset: evaluation", "rules:"] + [f"  - {r}" for r in rules]
    lines += ["triggers:", "  aliases: [champion]", "  stages: [Production]",
              "report:", "  sample_size: 2000"]
    return "\n".join(lines) + "\n"


def _relog(model: Any, reference: Any, current: pd.DataFrame) -> str:
    with mlflow.start_run(run_name="gate-demo-candidate-drifted") as run:
        mlflow_monitor.log_reference(reference.frame, target=reference.target,
                                     prediction=reference.prediction, task=reference.task)
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        log_current(current, context="evaluation")
    return run.info.run_id


def _register(client: MlflowClient, model_uri: str, run_id: str) -> str:
    try:
        client.get_registered_model(MODEL_NAME)
    except MlflowException:
        client.create_registered_model(MODEL_NAME)
    model_id = model_uri.split("/", 1)[1] if model_uri.startswith("models:/") else None
    return str(client.create_model_version(MODEL_NAME, model_uri, run_id, model_id=model_id).version)


def _print_where_to_look(tracking_uri: str, client: MlflowClient, version: str) -> None:
    mv = client.get_model_version(MODEL_NAME, version)
    print(textwrap.dedent(f"""\
        [gate demo] Where to look:
          mlflow ui --backend-store-uri {tracking_uri}
          - Models > {MODEL_NAME} > Version {version}: tags {T.VERDICT}={mv.tags.get(T.VERDICT)},
            {T.REASON}, {T.REPORT}; the description holds the gate summary.
          - the version's run > Artifacts > {mv.tags.get(T.REPORT, '').split('/', 2)[-1]}:
            report.html (Evidently, renders inline), snapshot.json, summary.json.
          - audit log: {audit_log_path()}
          - CI check: mlflow-monitor check {MODEL_NAME} {version} --alias champion"""))


if __name__ == "__main__":  # pragma: no cover
    run_gate_demo("sqlite:///mlflow.db")
