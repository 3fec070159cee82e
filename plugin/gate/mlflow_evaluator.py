"""The ``mlflow.model_evaluator`` plugin ``evidently``: the gate's reports from ``mlflow.models.evaluate``.

``mlflow.models.evaluate(..., evaluators=["evidently"])`` runs :class:`EvidentlyEvaluator`.

Configure it with ``evaluator_config={"evidently": {...}}``:

- ``reference`` (required): a DataFrame, the id of a run that called
  :func:`mlflow_monitor.log_reference`, or a path/URI of a CSV/Parquet/JSON file;
- ``recipe``: a recipe (built-in name, YAML path/text, mapping); by default the built-in
  matching ``model_type`` (classifier -> classification, regressor -> regression,
  anything else -> drift);
- ``sample_size``, ``seed``: for the HTML report (default: the recipe's);
- ``artifact_path``: folder in the run's artifacts (default ``evidently``).

It logs ``report.html`` (Evidently, escaped), ``report.json`` (the snapshot) and
``summary.json``, plus ``monitor/drift_share``, ``monitor/n_drifted`` and, with labels,
``monitor/<metric>`` for each performance metric, at the next step of the run's
``monitor/check`` counter (repeated evaluations chart over time; MLflow itself logs the
returned metrics once more at step 0 when the model is a logged model). ``report.html`` and
``summary.json`` open with the recipe's rules on these numbers and Evidently's per-column
methods and thresholds. A second evaluation in the same run writes to
``<artifact_path>-<UTC stamp>`` instead of overwriting the first. Without a ``reference``,
:meth:`can_evaluate` is False, so MLflow's default run of every evaluator skips it.
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from mlflow_monitor.gate.tags import METRIC_PREFIX
from mlflow_monitor.mlflow_compat import evaluation_artifact_classes, model_evaluator_classes

ModelEvaluator, EvaluationResult = model_evaluator_classes()

__all__ = ["EvidentlyEvaluator"]

_TASK_BY_MODEL_TYPE = {"classifier": "classification", "regressor": "regression"}


class EvidentlyEvaluator(ModelEvaluator):  # type: ignore[misc,valid-type]
    """MLflow model evaluator that logs Evidently drift/performance reports."""

    @classmethod
    def can_evaluate(cls, *, model_type: Any, evaluator_config: Any, **kwargs: Any) -> bool:
        return isinstance(evaluator_config, Mapping) and evaluator_config.get("reference") is not None

    def evaluate(
        self,
        *,
        model_type: Any,
        dataset: Any,
        run_id: str,
        evaluator_config: Mapping[str, Any],
        model: Any = None,
        extra_metrics: Any = None,
        custom_artifacts: Any = None,
        predictions: Optional[str] = None,
        **kwargs: Any,
    ) -> Any:
        import mlflow
        from mlflow.entities import Metric

        TextEvaluationArtifact, JsonEvaluationArtifact = evaluation_artifact_classes()

        from mlflow_monitor.gate.performance import compute_performance
        from mlflow_monitor.gate.recorder import CHECK_METRIC
        from mlflow_monitor.gate.reports import build_report, with_verdict_header

        recipe = _recipe(evaluator_config.get("recipe"), model_type, dataset)
        cols = recipe.columns
        current = _current_frame(dataset, model, predictions, cols.target, cols.prediction)
        features = [c for c in current.columns if c not in (cols.target, cols.prediction)]
        reference = _reference_frame(evaluator_config["reference"], model, features, cols.prediction,
                                     predictions)
        artifacts = build_report(
            reference, current, recipe=recipe,
            sample_size=evaluator_config.get("sample_size"), seed=evaluator_config.get("seed"),
        )
        drift = artifacts.drift_summary()
        metrics: dict[str, float] = {
            "drift_share": float(drift["drift_share"]),
            "n_drifted": float(drift["n_drifted"]),
        }
        if recipe.task in ("classification", "regression") and cols.target in current.columns \
                and cols.prediction in current.columns:
            metrics.update(compute_performance(current, task=recipe.task, target=cols.target,
                                               prediction=cols.prediction))
        logged = {f"{METRIC_PREFIX}{k}": v for k, v in metrics.items()}
        folder = str(evaluator_config.get("artifact_path") or "evidently").strip("/")
        client = mlflow.MlflowClient()
        if client.list_artifacts(run_id, folder):  # an earlier evaluation's: never overwrite it
            folder = f"{folder}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{int(time.time() * 1e6) % 1_000_000:06d}"
        header = _verdict(recipe, metrics, drift)
        client.log_text(run_id, with_verdict_header(artifacts.html, header), f"{folder}/report.html")
        client.log_dict(run_id, artifacts.snapshot, f"{folder}/report.json")
        client.log_dict(run_id, {
            **header,
            "recipe": recipe.name or recipe.task,
            "recipe_sha256": recipe.sha256,
            "metrics": metrics,
            "drifted_columns": [c for c in drift["columns"] if c["drifted"]],
            "sample_rows": artifacts.sample_rows,
            "reference_rows": artifacts.reference_rows,
            "current_rows": artifacts.current_rows,
        }, f"{folder}/summary.json")
        now = int(time.time() * 1000)
        step = int(client.get_run(run_id).data.metrics.get(CHECK_METRIC, 0)) + 1  # a time series
        points = [Metric(k, float(v), now, step) for k, v in logged.items() if v is not None and np.isfinite(v)]
        client.log_batch(run_id, metrics=[*points, Metric(CHECK_METRIC, float(step), now, step)])
        base = client.get_run(run_id).info.artifact_uri.rstrip("/")
        return EvaluationResult(
            metrics=logged,
            artifacts={
                "evidently_report": TextEvaluationArtifact(f"{base}/{folder}/report.html", artifacts.html),
                "evidently_snapshot": JsonEvaluationArtifact(f"{base}/{folder}/report.json",
                                                             artifacts.snapshot),
            },
            run_id=run_id,
        )


def _verdict(recipe: Any, metrics: dict[str, float], drift: dict[str, Any]) -> dict[str, Any]:
    """What the report and ``summary.json`` open with: the recipe's rules on these numbers
    (no champion here), and Evidently's per-column method, threshold and score."""
    from mlflow_monitor.gate.escaping import json_safe
    from mlflow_monitor.gate.rules import evaluate_rules

    results = evaluate_rules(recipe.rules, metrics=metrics, drift=None, champion_metrics=None) \
        if recipe.rules else []
    verdict = "NO RULES" if not results else ("PASSED" if all(r.passed for r in results) else "FAILED")
    columns = drift.get("columns") or []
    return json_safe({
        "verdict": verdict,
        "target": f"mlflow.evaluate with recipe {recipe.name or recipe.task}",
        "rules": [r.to_dict() for r in results],
        "drift": {"method": "evidently (Evidently's per-column tests, from its report)",
                  "drift_share": drift.get("drift_share"), "n_drifted": drift.get("n_drifted"),
                  "n_columns": len(columns), "columns": columns},
    })


def _recipe(source: Any, model_type: Any, dataset: Any) -> Any:
    from mlflow_monitor.recipes import load_recipe

    if source is not None:
        return load_recipe(source)
    task = _TASK_BY_MODEL_TYPE.get(str(model_type), "drift")
    columns: dict[str, Any] = {}
    if task != "drift":
        columns = {"target": getattr(dataset, "targets_name", None) or "target", "prediction": "prediction"}
    return load_recipe({"name": f"evaluate ({task})", "task": task, "columns": columns,
                        "current": {"dataset": "evaluate"}})


def _current_frame(
    dataset: Any, model: Any, predictions: Optional[str], target: Optional[str], prediction: Optional[str]
) -> pd.DataFrame:
    feats = dataset.features_data
    if not isinstance(feats, pd.DataFrame):
        feats = pd.DataFrame(np.asarray(feats), columns=[str(n) for n in dataset.feature_names])
    frame = feats.reset_index(drop=True).copy()
    if target and getattr(dataset, "has_targets", False):
        frame[target] = np.asarray(dataset.labels_data)
    if prediction:
        if model is not None:
            frame[prediction] = _predict(model, feats, predictions)
        elif getattr(dataset, "has_predictions", False):
            frame[prediction] = np.asarray(dataset.predictions_data)
    return frame


def _reference_frame(
    source: Any, model: Any, features: list[str], prediction: Optional[str], predictions: Optional[str]
) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index(drop=True)
    else:
        frame = _load_reference_source(str(source))
    if prediction and prediction not in frame.columns and model is not None \
            and all(c in frame.columns for c in features):
        frame = frame.copy()
        frame[prediction] = _predict(model, frame[features], predictions)
    return frame


def _load_reference_source(source: str) -> pd.DataFrame:
    from mlflow_monitor.gate.data import read_frame
    from mlflow_monitor.reference import load_reference

    if _looks_like_run_id(source):
        return load_reference(source).frame
    return read_frame(source)


def _looks_like_run_id(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


def _predict(model: Any, features: pd.DataFrame, column: Optional[str]) -> np.ndarray:
    out = model.predict(features)
    if isinstance(out, pd.DataFrame):
        out = out[column] if column and column in out.columns else out.iloc[:, 0]
    arr = np.asarray(out)
    return arr[:, 0] if arr.ndim > 1 else arr
